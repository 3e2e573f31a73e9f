"""Record every ``/admin`` HTTP call in the audit log, before its answer leaves.

A pure ASGI middleware: it holds the response start until the audit row is written. If
the write fails and audit is fail-closed, the client gets a 503 instead of the answer.
Identity comes from ``request.state`` as set by :mod:`server.http.deps`; calls refused
before authentication are recorded with no principals.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import DatabaseUnavailable
from core.identity import Caller
from server.audit.recorder import AUDIT_UNAVAILABLE, Outcome

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger(__name__)

AUDITED_PREFIX = "/admin"


def outcome_for_status(status: int) -> Outcome:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 404:
        return "not_found"
    if status < 500:
        return "invalid"
    return "error"


class AdminAuditMiddleware:
    def __init__(self, app: ASGIApp, prefix: str = AUDITED_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        swallow = False
        responded = False

        async def audited_send(message: Message) -> None:
            nonlocal swallow, responded
            if swallow:
                return
            if message["type"] == "http.response.start":
                responded = True
                try:
                    await self._record(scope, int(message["status"]), started)
                except DatabaseUnavailable:
                    swallow = True
                    body = json.dumps({"detail": AUDIT_UNAVAILABLE}).encode()
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 503,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            # An unhandled error becomes a 500 further out; record it here all the same.
            if not responded:
                with contextlib.suppress(DatabaseUnavailable):
                    await self._record(scope, 500, started)
            raise

    async def _record(self, scope: Scope, status: int, started: float) -> None:
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
        if runtime is None:
            raise DatabaseUnavailable(AUDIT_UNAVAILABLE)
        state: dict[str, Any] = scope.get("state", {})
        caller: Caller | None = state.get("caller")
        query = scope.get("query_string", b"").decode("latin-1")
        route = scope.get("route")
        await runtime.audit.record(
            principals=caller.principals if caller else (),
            client_id=caller.client_id if caller else None,
            transport="rest",
            method=f"{scope['method']} {getattr(route, 'path', scope['path'])}",
            target=scope["path"],
            arguments={"query_string": query} if query else {},
            outcome=outcome_for_status(status),
            error=None if status < 400 else f"HTTP {status}",
            latency_ms=(time.perf_counter() - started) * 1000,
        )


__all__ = ["AUDITED_PREFIX", "AdminAuditMiddleware", "outcome_for_status"]
