"""One batch's database write at a time, on its own thread, while the next batch embeds.

Without it the model sat idle for every batch's transaction (documents upserted, old
chunks deleted, new ones copied in with their HNSW, GIN and BM25 index entries): about a
fifth of a sync's wall time once the embedder got fast (torch bf16). Writes stay strictly
in order and at most one is in flight, so a crash loses at most the batch being written
and the one being embedded; the rerun skips what was committed (same hashes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

log = logging.getLogger(__name__)


class Committer:
    """Runs submitted writes one after another on a single background thread.

    :meth:`submit` first waits for the previous write and re-raises its error, so a failed
    write stops the caller at its next batch at the latest; :meth:`wait` does the same at
    the end of a run. Leaving the ``with`` block waits for a write still running (its
    transaction either commits whole or not at all) and only logs its error when an error
    is already on its way out.
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: Future[None] | None = None

    def submit(self, write: Callable[[], None]) -> None:
        self.wait()
        self._pending = self._pool.submit(write)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> Committer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.wait()
            else:
                self._settle()
        finally:
            self._pool.shutdown(wait=True)

    def _settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except Exception:
            log.warning("a batch write failed while the run was already failing", exc_info=True)


__all__ = ["Committer"]
