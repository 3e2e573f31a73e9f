"""Where one search's milliseconds go: named phases, recorded only when someone asks.

``bench/search_profile.py`` opens :func:`collecting` around a call; the search path marks
its phases with :func:`phase`. With no collector (production), a phase costs one
context-variable read. Phases that run concurrently (the keyword leg beside the query
embedding and the vector leg) each record their own wall time, so they may add up to more
than the call took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class PhaseTimes:
    """Milliseconds per phase name, summed over every time the phase ran."""

    ms: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, ms: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + ms
        self.counts[name] = self.counts.get(name, 0) + 1


# Tasks started inside a collecting block (the keyword leg) copy the context, so they
# share the same PhaseTimes object.
_current: ContextVar[PhaseTimes | None] = ContextVar("kb_search_phases", default=None)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as ``name`` if a collector is open, else do nothing."""
    sink = _current.get()
    if sink is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        sink.add(name, (time.perf_counter() - started) * 1000)


def record(name: str, ms: float) -> None:
    """Add ``ms`` to ``name`` if a collector is open (for spans a block cannot wrap)."""
    sink = _current.get()
    if sink is not None:
        sink.add(name, ms)


@contextmanager
def collecting() -> Iterator[PhaseTimes]:
    """Record the phases of everything run inside the block (and tasks it starts)."""
    times = PhaseTimes()
    token = _current.set(times)
    try:
        yield times
    finally:
        _current.reset(token)


__all__ = ["PhaseTimes", "collecting", "phase", "record"]
