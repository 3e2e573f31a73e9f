"""The admin console at ``/admin/ui``: server-rendered pages over the admin use cases.

One more door, with no logic of its own: every page calls a use case of
:mod:`server.usecases` with the :class:`~policies.capability.AdminCaller` that the admin
REST API mints (:mod:`server.http.console.session`). Templates and the stylesheet and
script live beside the code; nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from server.http.console import audit, jobs, overview, policies, search, signin, sources
from server.http.console.render import TEMPLATES
from server.http.console.session import PREFIX

STATIC = TEMPLATES.with_name("static")

router = APIRouter()
for module in (signin, overview, sources, jobs, policies, search, audit):
    router.include_router(module.router)


def static_files() -> StaticFiles:
    """The console's stylesheet and script, mounted at ``/admin/ui/static``."""
    return StaticFiles(directory=STATIC)


__all__ = ["PREFIX", "router", "static_files"]
