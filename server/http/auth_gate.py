"""Authenticate every ``/admin`` request from its headers, before any body is read.

FastAPI reads and parses a JSON body before it resolves a route's dependencies, so without
this gate an anonymous client could make the server read and parse 100 MB per request
only to be told 401 afterwards. The gate runs the same :class:`Authenticator` as
:mod:`server.http.deps` and leaves the result where ``authenticate_request`` looks for it
(``request.state.authenticated`` / ``caller``), so the route reuses it instead of
authenticating twice. Authorization (admin role, scopes) stays with the routes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import AuthError, DatabaseError
from server.auth.service import www_authenticate

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger(__name__)

GATED_PREFIX = "/admin"


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The body was never read, so the connection cannot carry another request.
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AdminAuthGate:
    """401 for an ``/admin`` request without valid credentials, its body left unread."""

    def __init__(
        self, app: ASGIApp, prefix: str = GATED_PREFIX, exempt: tuple[str, ...] = ()
    ) -> None:
        """``exempt``: prefixes under ``prefix`` that authenticate themselves: the admin
        console checks its cookie session before any body is read (the sign-in form's
        small body aside, which the body limit bounds)."""
        self.app = app
        self.prefix = prefix
        self.exempt = exempt

    def _gated(self, path: str) -> bool:
        def under(prefix: str) -> bool:
            return path == prefix or path.startswith(prefix + "/")

        return under(self.prefix) and not any(under(e) for e in self.exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not self._gated(path):
            await self.app(scope, receive, send)
            return
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
        if runtime is None:
            await _answer(send, 503, "the server is starting or stopping", [])
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            authenticated = await runtime.auth.authenticate(header, transport="rest")
        except AuthError as exc:
            # RFC 6750 3.1: no error code when the request carried no credentials at all.
            challenge = www_authenticate(
                runtime.auth.metadata_url,
                error="invalid_token" if header else None,
                description=exc.message,
            )
            # A refused /admin call leaves its audit row too, with nobody identified; if it
            # cannot be written it is in the error log, and the refusal stands either way.
            with contextlib.suppress(DatabaseError):
                await runtime.audit.record(
                    principals=(),
                    transport="rest",
                    method="admin.authorize",
                    target=f"{scope.get('method', '')} {path}",
                    outcome="denied",
                    error=exc.message,
                )
            await _answer(send, 401, exc.message, [(b"www-authenticate", challenge.encode())])
            return
        except DatabaseError as exc:
            log.warning("admin request refused: %s", exc.message)
            await _answer(send, 503, "the database is unavailable", [(b"retry-after", b"5")])
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["authenticated"] = authenticated
        state["caller"] = authenticated.caller
        await self.app(scope, receive, send)


__all__ = ["GATED_PREFIX", "AdminAuthGate"]
