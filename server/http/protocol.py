"""How ``kb serve`` runs uvicorn: the header deadline and the shutdown grace.

uvicorn bounds the idle time between requests (keep-alive) but not the time a client takes
to send a request's headers: 1,000 connections trickling headers a byte at a time would be
held for as long as they like. :func:`protocol_with_header_timeout` adds that bound to
uvicorn's h11 protocol: a connection whose request line and headers are not complete
within ``http.header_timeout_s`` of it opening (or of the previous response) gets 408 and
is closed. Body read time is bounded separately, in ASGI (:mod:`server.http.limits`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
    b"content-length: 30\r\nconnection: close\r\n\r\nrequest headers took too long\n"
)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on receiving each request's headers."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._cycle_when_armed: object = None

    def _arm(self) -> None:
        self._disarm()
        self._cycle_when_armed = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.cycle is not self._cycle_when_armed:
            return
        log.info("closing a connection from %s: headers not received in time", self.client)
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # A new request cycle means its headers are complete.
        if self._header_timer is not None and self.cycle is not self._cycle_when_armed:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            # The keep-alive timer covers the idle wait; this one the headers after it.
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    return type("KbHttpProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": seconds})


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration ``kb serve`` uses (tests start servers the same way)."""
    options: dict[str, Any] = {
        "host": settings.http.host,
        "port": settings.http.port,
        "log_level": settings.log_level.lower(),
        "proxy_headers": True,
        "http": protocol_with_header_timeout(settings.http.header_timeout_s),
        "timeout_graceful_shutdown": settings.http.shutdown_grace_s,
        "lifespan": "on",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


__all__ = ["HeaderDeadlineProtocol", "protocol_with_header_timeout", "uvicorn_config"]
