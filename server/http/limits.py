"""Bounds on what one request may send: body size (413) and body read time (408).

A pure ASGI middleware that counts bytes as they stream in, so no route ever holds more
than its limit in memory: a declared ``Content-Length`` over the limit is answered before
a byte of the body is read, and a chunked body is cut off at the first byte past it. A
client that sends its body slowly (a byte at a time) gets 408 once the application has
spent ``http.body_timeout_s`` in all waiting for its bytes (time the application itself
takes between reads does not count against the client). Header read time is bounded by
the HTTP protocol itself (:mod:`server.http.protocol`), before any ASGI code runs.

When the limit or the deadline strikes while the application is reading, the middleware
answers itself and tells the application the client went away; whatever the application
then tries to send is dropped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# Policy documents may be large: these routes get http.max_import_bytes instead.
IMPORT_PATHS: frozenset[str] = frozenset(
    {
        "/admin/policies/import",
        "/admin/policies/lint",
        "/admin/policies/test",
        "/admin/policies/diff",
    }
)


def _plain_response(status: int, detail: str, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is never read: the connection cannot be reused.
        (b"connection", b"close"),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class BodyLimitMiddleware:
    """413 past the route's byte limit, 408 past the body deadline; nothing buffered."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        import_max_bytes: int,
        body_timeout_s: float,
        import_paths: Collection[str] = IMPORT_PATHS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.import_max_bytes = import_max_bytes
        self.body_timeout_s = body_timeout_s
        self.import_paths = frozenset(import_paths)

    def limit_for(self, path: str) -> int:
        return self.import_max_bytes if path in self.import_paths else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the HTTP parser refuses a malformed Content-Length itself
            if too_big:
                log.info("refused a %s-byte body on %s (limit %d)", declared, scope["path"], limit)
                for message in _plain_response(413, f"request body over {limit} bytes", []):
                    await send(message)
                return
        # Time spent waiting for the client's bytes, summed: a slow application does not
        # count against the client, a client trickling its body does.
        waited = 0.0
        received = 0
        # Without Content-Length or Transfer-Encoding there is no body (RFC 9112 6.3): the
        # deadline must not cut a long-lived GET (an SSE stream) that reads late.
        body_done = declared in (None, "0") and "transfer-encoding" not in headers
        started = False
        answered = False

        async def answer(status: int, detail: str) -> Message:
            nonlocal answered
            if not started and not answered:
                for message in _plain_response(status, detail, []):
                    await send(message)
            answered = True
            return {"type": "http.disconnect"}

        async def counted_receive() -> Message:
            nonlocal received, body_done, waited
            if answered:
                return {"type": "http.disconnect"}
            if body_done or started:
                # Waiting for a disconnect after the body, or answering already: no deadline.
                return await receive()
            remaining = self.body_timeout_s - waited
            message: Message | None = None
            if remaining > 0:
                began = time.monotonic()
                with anyio.move_on_after(remaining):
                    message = await receive()
                waited += time.monotonic() - began
            if message is None:
                log.info("body of %s not received within %ss", scope["path"], self.body_timeout_s)
                return await answer(408, "the request body was not received in time")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.info("body on %s cut off past %d bytes", scope["path"], limit)
                    return await answer(413, f"request body over {limit} bytes")
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # we already answered 408/413; the application's reply is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


__all__ = ["IMPORT_PATHS", "BodyLimitMiddleware"]
