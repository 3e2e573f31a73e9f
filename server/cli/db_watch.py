"""Keep the embedded PostgreSQL running for as long as a long-lived kb process holds it.

``kb serve`` and ``kb worker`` own a handle on the embedded server. If the postmaster dies
(kill -9, the OOM killer), nothing else will start it again: every request would fail
until an operator restarts kb. :class:`EmbeddedWatchdog` checks it every few seconds on a
background thread and restarts it (with backoff while a restart fails, e.g. while orphaned
backends still hold its shared memory); the connection pool reconnects by itself (pre-ping),
so the server recovers without a restart. With ``DATABASE_URL`` the database is someone
else's to run and the watchdog does nothing.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from server.db.engine import DatabaseTarget

log = logging.getLogger(__name__)


class EmbeddedWatchdog:
    """``with EmbeddedWatchdog(target):`` restarts the embedded server if it dies."""

    def __init__(
        self, target: DatabaseTarget, *, interval_s: float = 2.0, max_backoff_s: float = 30.0
    ) -> None:
        self.target = target
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-pg-watchdog", daemon=True)

    def _run(self) -> None:
        delay = self.interval_s
        while not self._stop.wait(delay):
            embedded = self.target.embedded
            if embedded is None:
                return
            try:
                if embedded.ensure_running():
                    self.restarts += 1
                    log.warning("the embedded PostgreSQL was restarted (restart %d)", self.restarts)
                delay = self.interval_s
            except Exception as exc:
                delay = min(self.max_backoff_s, delay * 2)
                log.error(
                    "the embedded PostgreSQL could not be restarted (%s: %s); retrying in %.0f s",
                    exc.__class__.__name__,
                    exc,
                    delay,
                )

    def __enter__(self) -> EmbeddedWatchdog:
        if self.target.embedded is not None:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


__all__ = ["EmbeddedWatchdog"]
