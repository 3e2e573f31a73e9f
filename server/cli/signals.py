"""SIGTERM handled like SIGINT by long-running commands, so their clean-up always runs.

Python turns SIGINT into ``KeyboardInterrupt`` (``finally`` blocks run) but leaves SIGTERM
at the default action, which ends the process at once: the embedded PostgreSQL keeps
running with this process's handle still registered. systemd, Docker and Kubernetes stop
processes with SIGTERM. Servers that handle signals themselves (uvicorn, procrastinate)
replace these handlers while they run and restore them afterwards.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def stop_signals_unwind() -> Iterator[None]:
    """Inside: SIGTERM and SIGINT raise ``KeyboardInterrupt``; handlers restored on exit."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["STOP_SIGNALS", "stop_signals_unwind"]
