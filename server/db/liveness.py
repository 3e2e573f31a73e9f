"""Checking a pooled connection before use without a round trip when nothing says it died.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` on every checkout: a round trip and a
statement on the server, twice per search (the search's connection and the audit row's),
about 0.4 ms each on a local server and a network round trip each on a remote one. It
exists for connections that died while they sat in the pool: the server restarted, an
administrator ended the backend, ``idle_session_timeout`` fired. In each of those the server
sends a closing message (``FATAL: terminating connection ...``) and closes the socket, so
the client's socket turns readable while the connection is idle, and an idle connection
in the pool has nothing else to read: no statement is under way, and pooled connections
never LISTEN.

So a checkout looks at the socket first (``poll`` with no timeout, a few microseconds)
and pings only when there is something to read, or when the connection has been idle
longer than ``ping_after_idle_s`` (a server that vanished without closing anything, such
as a host that lost power, leaves nothing to see; the ping is the old safety net there).
A ping that fails invalidates every pooled connection older than it, as the pre-ping did,
and the pool hands out a fresh connection instead of failing the call.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

_CHECKED_IN = "kb_checked_in_at"
_FRESH = "kb_fresh"  # connected for this checkout: nothing to check yet


def socket_of(dbapi_connection: Any) -> int | None:
    """The libpq socket of a psycopg connection (sync, or async behind SQLAlchemy's adapter),
    or None for anything else, which is then always pinged."""
    connection = getattr(dbapi_connection, "_connection", dbapi_connection)
    try:
        fd = connection.pgconn.socket
    except Exception:  # closed, or not psycopg: the ping decides
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def has_unread_input(fd: int) -> bool:
    """True when the server sent something (or closed the socket) since the last statement."""
    poller = select.poll()  # not select.select: no limit on descriptor numbers
    poller.register(fd, select.POLLIN | select.POLLPRI)
    try:
        return bool(poller.poll(0))  # POLLHUP, POLLERR and POLLNVAL come unasked
    except OSError:
        return True


def needs_ping(dbapi_connection: Any, idle_s: float, ping_after_idle_s: float) -> str | None:
    """Why this idle connection must be pinged before use, or None when it can be trusted."""
    if ping_after_idle_s <= 0:
        return "every checkout is pinged"
    if idle_s >= ping_after_idle_s:
        return f"idle for {idle_s:.1f} s"
    fd = socket_of(dbapi_connection)
    if fd is None:
        return "no socket to look at"
    if has_unread_input(fd):
        return "the server sent something while it was idle"
    return None


def watch_liveness(engine: Engine, *, ping_after_idle_s: float) -> None:
    """Install the checkout check on ``engine``'s pool (use with ``pool_pre_ping=False``).

    ``ping_after_idle_s`` 0 pings on every checkout, as ``pool_pre_ping`` does."""
    dialect: Dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_FRESH] = True

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        if record.info.pop(_FRESH, False):
            return
        idle_s = time.monotonic() - record.info.get(_CHECKED_IN, 0.0)
        reason = needs_ping(dbapi_connection, idle_s, ping_after_idle_s)
        if reason is None:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # Raised from a checkout listener, this makes the pool drop every connection
            # made before now and retry with a new one (what pool_pre_ping does).
            log.info("pooled connection failed its ping (%s): %s", reason, exc)
            raise InvalidatePoolError(f"pooled connection failed its ping: {exc}") from exc


__all__ = ["has_unread_input", "needs_ping", "socket_of", "watch_liveness"]
