"""DNS-rebinding protection for the whole app: ``Host`` and ``Origin`` against the settings.

The MCP SDK checks these on ``/mcp`` only; a page on ``evil.com`` that rebinds its name to
127.0.0.1 could otherwise drive ``/admin`` from a browser. The same lists apply everywhere
(``http.allowed_hosts`` / ``http.allowed_origins`` plus the public URL's host, as built by
:func:`server.mcp.http.security_settings`), with the same ``host:*`` any-port patterns:
a wrong ``Host`` gets 421, a wrong ``Origin`` 403 (what the SDK answers on ``/mcp``).

The liveness and readiness probes are exempt: orchestrators call them by pod IP (Kubernetes
sends ``Host: 10.x.y.z:8000``) and they reveal nothing a caller could abuse.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

PROBE_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz"})


def matches(value: str, allowed: Collection[str]) -> bool:
    """Exact match, or ``base:*`` matching ``base:<anything>`` (any port)."""
    if value in allowed:
        return True
    return any(a.endswith(":*") and value.startswith(a[:-2] + ":") for a in allowed)


class TrustedHostMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Collection[str],
        allowed_origins: Collection[str],
        exempt_paths: Collection[str] = PROBE_PATHS,
    ) -> None:
        self.app = app
        self.allowed_hosts = frozenset(allowed_hosts)
        self.allowed_origins = frozenset(allowed_origins)
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        host = origin = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if not host or not matches(host, self.allowed_hosts):
            log.warning("refused Host %r on %s (not in http.allowed_hosts)", host, scope["path"])
            await _refuse(send, 421, "Invalid Host header")
            return
        if origin and not matches(origin, self.allowed_origins):
            log.warning(
                "refused Origin %r on %s (not in http.allowed_origins)", origin, scope["path"]
            )
            await _refuse(send, 403, "Invalid Origin header")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = ["PROBE_PATHS", "TrustedHostMiddleware", "matches"]
