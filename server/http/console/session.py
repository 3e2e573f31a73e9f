"""Console sessions: a cookie naming a server-side session that holds the credential.

The browser never holds the token itself, only a random session id (``HttpOnly``,
``SameSite=Strict``, ``Secure`` over TLS, scoped to the console's path). Every request
authenticates the stored credential again and mints the admin capability through the
same dependency as the admin REST API (:func:`server.http.deps.admin_caller`), so an
expired token, a revoked or narrowed API key or a lost admin role ends the session's
rights at once. Every POST carries the session's CSRF token in a hidden field.

Sessions live in this process's memory: a restart signs everybody out, and behind a
load balancer the console needs sticky routing (it is an operator's tool, not a product).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from core.errors import AuthError
from policies.capability import AdminCaller
from server.http.deps import admin_caller

PREFIX = "/admin/ui"
COOKIE = "kb_console"
PRE_COOKIE = "kb_console_signin"
IDLE_S = 3600
ABSOLUTE_S = 8 * 3600


@dataclass
class Session:
    authorization: str
    subject: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def expired(self, now: float) -> bool:
        return now - self.seen > IDLE_S or now - self.created > ABSOLUTE_S


class SessionStore:
    """Session id -> session, in memory; expired sessions are dropped when met."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def create(self, authorization: str, subject: str) -> tuple[str, Session]:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if v.expired(now)]:
            del self._sessions[sid]
        sid = secrets.token_urlsafe(32)
        session = Session(authorization, subject)
        self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        session = self._sessions.get(sid) if sid else None
        if session is None:
            return None
        now = time.monotonic()
        if session.expired(now):
            self._sessions.pop(sid or "", None)
            return None
        session.seen = now
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)


def store_of(request: Request) -> SessionStore:
    store: SessionStore | None = getattr(request.app.state, "console_sessions", None)
    if store is None:
        store = SessionStore()
        request.app.state.console_sessions = store
    return store


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, samesite="strict", secure=is_tls(request)
    )


def _to_signin(request: Request, why: str | None = None) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{PREFIX}/signin?next={quote(target, safe='')}"
    if why:
        location += f"&why={quote(why, safe='')}"
    return HTTPException(status_code=303, detail="sign in first", headers={"Location": location})


@dataclass(frozen=True)
class Console:
    """The signed-in administrator of a console request."""

    admin: AdminCaller
    session: Session
    sid: str


async def console_session(request: Request) -> Console:
    """The admin capability for this request's session, or a redirect to the sign-in page."""
    sid = request.cookies.get(COOKIE)
    session = store_of(request).get(sid)
    if session is None or sid is None:
        raise _to_signin(request)
    runtime = request.app.state.runtime
    try:
        request.state.authenticated = await runtime.auth.authenticate(
            session.authorization, transport="rest"
        )
    except AuthError as exc:
        store_of(request).drop(sid)
        raise _to_signin(request, exc.message) from None
    # The same capability check as every /admin REST route (records refusals).
    admin = await admin_caller(request)
    return Console(admin, session, sid)


ConsoleUser = Annotated[Console, Depends(console_session)]


async def checked_form(request: Request, console: Console) -> FormData:
    """The POSTed form, after its CSRF token matched the session's (403 otherwise)."""
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not secrets.compare_digest(token, console.session.csrf):
        raise HTTPException(status_code=403, detail="the form's CSRF token is missing or wrong")
    return form


__all__ = [
    "COOKIE",
    "PREFIX",
    "PRE_COOKIE",
    "Console",
    "ConsoleUser",
    "Session",
    "SessionStore",
    "checked_form",
    "clear_cookie",
    "console_session",
    "is_tls",
    "set_cookie",
    "store_of",
]
