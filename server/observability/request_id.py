"""One id per HTTP request, in every log line of the request and in its audit row.

The id comes from the client's ``X-Request-ID`` when it is sane (1-128 characters of
letters, digits and ``-_.:``; a proxy or gateway usually sets one), otherwise a new one is
made. A hostile header (huge, control characters, anything else) is replaced, never
logged or stored as sent. The answer carries the id in its own ``X-Request-ID`` header,
so a client can quote it to an operator.

The id lives in a context variable: the MCP SDK hands each message to its handler with
the sender's context, so tool handlers and the audit recorder see the id of the HTTP
request that carried the call.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability.metrics import observe_http

HEADER: Final = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_current: ContextVar[str | None] = ContextVar("kb_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, or None (CLI, jobs, start-up)."""
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted(raw: bytes | None) -> str:
    """The client's id if sane, else a fresh one."""
    if raw is not None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _SANE.fullmatch(text):
            return text
    return new_request_id()


def route_group(path: str) -> str:
    """A bounded label for a path (metrics must not carry raw paths)."""
    if path == "/mcp" or path.startswith("/mcp/"):
        return "mcp"
    if path.startswith("/admin"):
        return "admin"
    if path in ("/healthz", "/readyz"):
        return "health"
    if path == "/metrics":
        return "metrics"
    return "other"


class RequestIdMiddleware:
    """Outermost ASGI middleware: set the request id, answer it, count the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope.get("headers", ()) if k == HEADER), None)
        rid = accepted(incoming)
        token = _current.set(rid)
        route = route_group(str(scope.get("path", "")))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != HEADER]
                headers.append((HEADER, rid.encode("ascii")))
                message = {**message, "headers": headers}
                observe_http(route, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


__all__ = [
    "HEADER",
    "RequestIdMiddleware",
    "accepted",
    "current_request_id",
    "new_request_id",
    "route_group",
]
