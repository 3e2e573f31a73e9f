"""Where a source added at run time may read: the configured roots, never the data directory.

Sources in the configuration file are the operator's own and read where they say. Sources
added over REST or the CLI come from whoever holds an admin token, so they are fenced: a
files root (or a SQLite file) must lie, after resolving symlinks and ``..``, under one of
``ingest.runtime_file_roots`` and must neither lie under nor contain a denied folder (the
data directory, with the signing keys and the embedded database). No roots configured
means no such source reads any file: fail closed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConnectorError


@dataclass(frozen=True)
class PathFence:
    allowed: tuple[Path, ...]  # resolved
    denied: tuple[Path, ...]  # resolved

    @classmethod
    def of(cls, allowed: list[Path] | tuple[Path, ...], denied: list[Path]) -> PathFence:
        return cls(tuple(_real(p) for p in allowed), tuple(_real(p) for p in denied))

    def check(self, path: Path, what: str) -> None:
        """Raise ConnectorError unless ``path`` may be read; the message names no server path
        beyond what the caller wrote."""
        if not self.allowed:
            raise ConnectorError(
                f"{what} is refused: sources added at run time may read files only under "
                "ingest.runtime_file_roots, and none is configured"
            )
        real = _real(path)
        if not any(_within(real, root) for root in self.allowed):
            raise ConnectorError(
                f"{what} is outside the folders sources added at run time may read "
                "(ingest.runtime_file_roots)"
            )
        if any(_within(real, d) or _within(d, real) for d in self.denied):
            raise ConnectorError(f"{what} is refused: it overlaps the server's data directory")


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path.expanduser()))
    except (OSError, ValueError):
        return Path(os.path.normpath(Path(path).absolute()))


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


__all__ = ["PathFence"]
