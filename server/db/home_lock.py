"""An exclusive lock on the data directory for the lifetime of one ``kb serve``.

Two servers on one KB_HOME would race on the embedded database's lifecycle and on the
dev signing key; the second one exits at once with the first one's pid in the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from core.errors import DataDirLocked


class HomeLock:
    def __init__(self, home: Path, purpose: str = "serve") -> None:
        self.path = home / f"{purpose}.lock"
        self.purpose = purpose
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirLocked(
                f"data directory {self.path.parent} is in use by another `kb {self.purpose}` "
                f"(pid {holder}); stop it or set KB_HOME to another directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


__all__ = ["HomeLock"]
