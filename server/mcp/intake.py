"""What ``/mcp`` checks before the SDK sees a POST: request ids, and load shedding.

**Request ids.** JSON-RPC ids are strings or integers (MCP forbids null). The SDK reads a
message whose ``id`` is an object, array, float or boolean as a notification and answers
202 with no body, so the client waits forever; such a message gets a JSON-RPC "invalid
request" error (HTTP 400) here instead.

**Load shedding**: at most N calls doing work in flight per process.

Under overload a late answer is worth less than a fast refusal: past
``http.max_concurrent_calls`` an MCP call that would search, read or complete gets HTTP 503
with ``Retry-After`` (and a JSON-RPC error body naming the request id) at once, instead of
queueing behind the embedder and the database pool until every caller times out. Cheap
protocol traffic (initialize, notifications, lists, ping) is never shed, and neither are
``/healthz`` and ``/readyz``, which do not pass through here.

The middleware sits after authentication (an anonymous caller cannot take a slot) and
reads the JSON-RPC body, already bounded by :mod:`server.http.limits`, to find the method;
the body is then replayed to the transport unchanged.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# Methods that run a query or the embedder; everything else is bookkeeping.
WORK_METHODS: frozenset[str] = frozenset(
    {"tools/call", "resources/read", "prompts/get", "completion/complete"}
)
BUSY_CODE = -32000  # implementation-defined server error (JSON-RPC 2.0, 5.1)
INVALID_REQUEST = -32600


def _bad_id(payload: Any) -> bool:
    """A request (it has a method) whose ``id`` is present but not a string or integer."""
    items = payload if isinstance(payload, list) else [payload]
    for item in items:
        if isinstance(item, dict) and "method" in item and "id" in item:
            request_id = item["id"]
            if isinstance(request_id, bool) or not isinstance(request_id, str | int):
                return True
    return False


def _work_request(payload: Any) -> tuple[bool, Any]:
    """Whether the payload holds a work call, and the id to answer with."""
    items = payload if isinstance(payload, list) else [payload]
    for item in items:
        if isinstance(item, dict) and item.get("method") in WORK_METHODS:
            request_id = item.get("id")
            valid_id = isinstance(request_id, str | int) and not isinstance(request_id, bool)
            return True, request_id if valid_id else None
    return False, None


class McpIntake:
    """400 for malformed ids; 503 + Retry-After for work calls past ``limit`` in flight."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_s: int) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.shed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        messages: deque[Message] = deque()
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.popleft() if messages else await receive()

        try:
            payload = json.loads(b"".join(chunks))
        except ValueError:
            payload = None  # the transport answers the parse error itself
        if _bad_id(payload):
            log.info("refused a JSON-RPC request whose id is not a string or integer")
            await _json(
                send,
                400,
                _error(None, INVALID_REQUEST, "invalid request: id must be a string or an integer"),
            )
            return
        work, request_id = _work_request(payload)
        if not work:
            await self.app(scope, replay, send)
            return
        if self.in_flight >= self.limit:
            self.shed += 1
            if self.shed == 1 or self.shed % 1000 == 0:
                log.warning(
                    "overloaded: %d calls in flight (http.max_concurrent_calls); %d shed so far",
                    self.in_flight,
                    self.shed,
                )
            await self._busy(send, request_id)
            return
        # No await between the check and the increment: the event loop makes this atomic.
        self.in_flight += 1
        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1

    async def _busy(self, send: Send, request_id: Any) -> None:
        message = f"the server is busy; retry in {self.retry_after_s} s"
        retry = ((b"retry-after", str(self.retry_after_s).encode()),)
        await _json(send, 503, _error(request_id, BUSY_CODE, message), retry)


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _json(
    send: Send, status: int, payload: dict[str, Any], extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["BUSY_CODE", "WORK_METHODS", "McpIntake"]
