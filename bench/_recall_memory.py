"""Peak memory of a benchmark run: this process plus the embedded PostgreSQL it started.

Sampled once a second from /proc as proportional set size (PSS), so pages PostgreSQL's
processes share (shared_buffers, the HNSW build's shared graph) are counted once in the sum.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command may contain spaces and parentheses: fields resume after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            out.append(int(entry.name))
    return out


class PeakMemory:
    def __init__(self) -> None:
        self.pgdata: Path | None = None
        self.peak_self_mb = 0.0
        self.peak_postgres_mb = 0.0
        self.peak_total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _postgres_kb(self) -> int:
        if self.pgdata is None:
            return 0
        try:
            postmaster = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        return sum(_pss_kb(p) for p in [postmaster, *_children(postmaster)])

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            own = _pss_kb(os.getpid()) / 1024
            pg = self._postgres_kb() / 1024
            self.peak_self_mb = max(self.peak_self_mb, own)
            self.peak_postgres_mb = max(self.peak_postgres_mb, pg)
            self.peak_total_mb = max(self.peak_total_mb, own + pg)
