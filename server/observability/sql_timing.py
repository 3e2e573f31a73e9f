"""The ``database`` stage of a search: time spent in SQL statements, from SQLAlchemy's
cursor events.

Installed once per process (``kb serve``) on SQLAlchemy's ``Engine`` class, so every engine
counts (the primary's and each read replica's); the listeners cost a context-variable read
per statement outside a search, and add the statement's time to the search's clock inside
one (:mod:`server.observability.search_clock`). SQLAlchemy's asyncio layer runs the
driver in a greenlet that carries the caller's context, so the clock is visible here.
"""

from __future__ import annotations

import time
from typing import Any, Final

from sqlalchemy import Engine, event

from server.observability import search_clock

_STARTED: Final = "kb_statement_started"


def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    if search_clock.active():
        conn.info.setdefault(_STARTED, []).append(time.perf_counter())


def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    started = conn.info.get(_STARTED)
    if started:
        search_clock.add("database", time.perf_counter() - started.pop())


def time_statements(engine: type[Engine] | Engine = Engine) -> None:
    """Count every statement run inside a search towards its database stage (all engines
    by default; idempotent)."""
    if not event.contains(engine, "before_cursor_execute", _before):
        event.listen(engine, "before_cursor_execute", _before)
        event.listen(engine, "after_cursor_execute", _after)


__all__ = ["time_statements"]
