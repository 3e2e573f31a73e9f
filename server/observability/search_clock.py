"""Where one search's time goes: embed, database, re-check.

:func:`server.observability.metrics.observed_search` wraps the search service's entry
point and runs it inside :func:`started`; while it runs, a clock in
a context variable collects the seconds each stage reports through :func:`add` (the
embedder for ``embed``, SQLAlchemy's cursor events for ``database``, the row re-check for
``recheck``). Tasks started inside the search (the keyword leg) copy the context and so
add to the same clock; outside a search :func:`add` does nothing.

Stages may overlap in wall time (the keyword leg's SQL runs while the query is embedded),
so their sum can exceed the search's duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

STAGES: Final = ("embed", "database", "recheck")


class Clock:
    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)


_current: ContextVar[Clock | None] = ContextVar("kb_search_clock", default=None)


def add(stage: str, seconds: float) -> None:
    """Count ``seconds`` towards ``stage`` of the search in progress, if any."""
    clock = _current.get()
    if clock is not None:
        clock.seconds[stage] = clock.seconds.get(stage, 0.0) + seconds


def active() -> bool:
    return _current.get() is not None


@contextmanager
def started() -> Iterator[Clock]:
    """A fresh clock for the search that runs inside this block."""
    clock = Clock()
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


__all__ = ["STAGES", "Clock", "active", "add", "started"]
