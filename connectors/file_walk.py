"""Walking a source's directory tree: which files are in scope, and their sidecar files.

A folder that cannot be listed stops the walk with a ConnectorError instead of being
skipped: a walk that silently missed a folder would make every document in it look
deleted, and the pipeline would remove them from the index.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.globs import GlobSet
from core.errors import ConnectorError


@dataclass(frozen=True)
class FileEntry:
    rel_path: str  # POSIX, relative to the root
    mtime_ns: int
    size: int
    ino: int = 0  # with the state and the name, recognises a file whose folder moved

    @property
    def state(self) -> list[int]:
        """The cursor value for this file: changes when the file changes."""
        return [self.mtime_ns, self.size]


@dataclass(frozen=True)
class TreeWalker:
    root: Path
    shown_root: str  # as the operator wrote it, for messages (not the resolved server path)
    include: GlobSet
    exclude: GlobSet
    sidecar_name: str | None
    follow_symlinks: bool

    def check_root(self) -> None:
        shown = _shorten(self.shown_root)
        try:
            # stat() raises for names the OS refuses (too long, NUL, not a folder on the way);
            # each becomes the source's error, never an unhandled OSError.
            st = self.root.stat()
        except FileNotFoundError:
            raise ConnectorError(f"root folder {shown!r} does not exist") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConnectorError(f"root folder {shown!r} cannot be used: {reason}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ConnectorError(f"root {shown!r} is not a folder")
        try:
            with os.scandir(self.root):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConnectorError(f"root folder {shown!r} cannot be listed: {reason}") from None

    def walk(self, sidecars: dict[str, list[int]] | None = None) -> Iterator[FileEntry]:
        """In-scope files in a stable order; records sidecar states into ``sidecars``."""
        self.check_root()
        yield from self._walk_dir(self.root, "", sidecars, frozenset())

    def _walk_dir(
        self,
        directory: Path,
        rel_dir: str,
        sidecars: dict[str, list[int]] | None,
        ancestors: frozenset[tuple[int, int]],
    ) -> Iterator[FileEntry]:
        try:
            here = directory.stat()
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            shown = rel_dir or "."
            raise ConnectorError(
                f"folder {shown} cannot be listed: {exc.strerror or type(exc).__name__}"
            ) from None
        # Following symlinks can loop back to an ancestor; never enter a folder twice on one path.
        ancestors = ancestors | {(here.st_dev, here.st_ino)}
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink() and not self.follow_symlinks:
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue  # a dangling symlink or a file removed while listing
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in ancestors or self.exclude.matches(rel):
                    continue
                subdirs.append((Path(entry.path), rel))
            elif stat.S_ISREG(st.st_mode):
                if self.sidecar_name and entry.name == self.sidecar_name:
                    if sidecars is not None:
                        sidecars[rel] = [st.st_mtime_ns, st.st_size]
                    continue
                if self.include.matches(rel) and not self.exclude.matches(rel):
                    yield FileEntry(rel, st.st_mtime_ns, st.st_size, st.st_ino)
        for path, rel in subdirs:
            yield from self._walk_dir(path, rel, sidecars, ancestors)


def _shorten(text: str, limit: int = 120) -> str:
    """A path as shown in an error: long ones elided in the middle."""
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


__all__ = ["FileEntry", "TreeWalker"]
