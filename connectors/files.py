"""The ``files`` connector: a directory tree (local disk or a mounted share) of documents.

Formats: PDF, DOCX, PPTX (with speaker notes), XLSX, HTML (main content), Markdown, plain
text and CSV; see :mod:`connectors.parsers`. Placement (collection, level, ACL) comes from
the source, per-folder sidecar files and path-glob rules; see :mod:`connectors.acl_rules`
for the precedence.

Identity: ``external_id`` is the POSIX path relative to ``root``; ``path`` is the same with a
leading ``/``; ``uri`` is the file's ``file://`` URI, or ``url_base`` + the relative path
when the source maps its root to a public URL (a drive or intranet that serves the files).

Incremental polls compare each file's ``(mtime_ns, size)`` with the cursor and parse only
new or changed files. The cursor also remembers sidecar states and a fingerprint of this
configuration, so editing a sidecar re-reads the files below it and editing the rules
re-reads everything (placement is part of what the index stores).

A file whose bytes did not change but whose placement did (a sidecar above it edited,
added or removed; its folder moved, recognised by inode, size, time and name) is not
parsed: it is yielded as a :class:`~connectors.base.PlacementChange`, which the pipeline
applies to the stored document and its chunks without embedding anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from connectors.acl_rules import Placement, PlacementResolver
from connectors.base import (
    ConnectorContext,
    FailedDocument,
    Item,
    PlacementChange,
    SourceDocument,
)
from connectors.base import Placement as DocumentPlacement
from connectors.config import SourceConfigBase
from connectors.file_walk import FileEntry, TreeWalker
from connectors.files_config import DEFAULT_EXCLUDE, DEFAULT_INCLUDE, FilesSourceConfig
from connectors.globs import GlobSet
from connectors.isolated_parse import parse_in_child
from connectors.parsers import parse_bytes
from core.errors import ConnectorError, DocumentParseError

# Bump when parsing changes what a file yields, so the next poll re-reads every file.
PARSER_VERSION = 1


def document_url(url_base: str | None, path: Path, rel_path: str) -> str:
    """Where a reader opens the file: under the public base URL if set, else file://."""
    if url_base is None:
        return path.as_uri()
    return url_base + urllib.parse.quote(rel_path, safe="/")


class FilesConnector:
    """Reads documents from a directory tree. Blocking; the pipeline runs it on a thread."""

    kind: ClassVar[str] = "files"
    config_model: ClassVar[type[SourceConfigBase]] = FilesSourceConfig

    def __init__(self, config: SourceConfigBase, context: ConnectorContext) -> None:
        if not isinstance(config, FilesSourceConfig):
            raise TypeError("FilesConnector needs a FilesSourceConfig")
        self.config = config
        self.context = context
        root = Path(config.root).expanduser()
        if not root.is_absolute():
            root = context.base_dir / root
        self.root = Path(os.path.normpath(root.absolute()))
        self._fence_check()
        self._walker = TreeWalker(
            root=self.root,
            shown_root=config.root,
            include=GlobSet(tuple(config.include)),
            exclude=GlobSet(tuple(config.exclude)),
            sidecar_name=config.sidecar_file,
            follow_symlinks=config.follow_symlinks,
        )

    # -- the Connector protocol ----------------------------------------------------------

    def check(self) -> None:
        self._fence_check()
        self._walker.check_root()

    def _fence_check(self) -> None:
        """Sources added at run time read only under the configured roots (see PathFence)."""
        fence = self.context.fence
        if fence is None:
            return
        if self.config.follow_symlinks:
            raise ConnectorError(
                "follow_symlinks is refused for sources added at run time (a link could "
                "lead outside ingest.runtime_file_roots)"
            )
        fence.check(self.root, f"root folder {self.config.root[:120]!r}")

    def full_load(self) -> Iterator[Item]:
        entries = list(self._walker.walk())
        return self._load_all(entries)

    def poll(self, cursor: Mapping[str, Any] | None) -> tuple[Iterator[Item], Mapping[str, Any]]:
        sidecars: dict[str, list[int]] = {}
        entries = list(self._walker.walk(sidecars))
        fingerprint = self._fingerprint()
        next_cursor: dict[str, Any] = {
            "config": fingerprint,
            "files": {e.rel_path: e.state for e in entries},
            "sidecars": sidecars,
            "inodes": {e.rel_path: e.ino for e in entries},
        }
        # A file that fails keeps no cursor entry, so the next poll reads it again (a fixed
        # file, or a changed sidecar, then applies) instead of moving past it.
        files_state: dict[str, Any] = next_cursor["files"]
        if not cursor or cursor.get("config") != fingerprint:
            return self._load_all(entries, files_state), next_cursor
        old_files: Mapping[str, Any] = cursor.get("files") or {}
        old_sidecars: Mapping[str, Any] = cursor.get("sidecars") or {}
        # A changed, new or removed sidecar changes the placement of everything below it.
        dirty_dirs = {
            str(PurePosixPath(rel).parent).removeprefix(".")
            for rel in set(sidecars) | set(old_sidecars)
            if _as_state(sidecars.get(rel)) != _as_state(old_sidecars.get(rel))
        }
        moves = _moved_files(entries, old_files, cursor.get("inodes") or {})
        changed: list[FileEntry] = []
        placement_only: set[str] = set()
        for e in entries:
            unchanged = _as_state(old_files.get(e.rel_path)) == e.state
            if unchanged and not _under_any(e.rel_path, dirty_dirs):
                continue
            if unchanged or e.rel_path in moves:
                # The bytes are the ones already indexed: only the placement is new.
                placement_only.add(e.rel_path)
            changed.append(e)
        return self._load_all(changed, files_state, placement_only, moves), next_cursor

    def scan_ids(self) -> set[str]:
        return {e.rel_path for e in self._walker.walk()}

    def close(self) -> None:
        """Nothing to release: files are opened and closed per document."""

    # -- documents ------------------------------------------------------------------------

    def _load_all(
        self,
        entries: list[FileEntry],
        cursor_files: dict[str, Any] | None = None,
        placement_only: set[str] | None = None,
        moves: Mapping[str, str] | None = None,
    ) -> Iterator[Item]:
        resolver = PlacementResolver(
            self.root, self._defaults(), self.config.rules, self.config.sidecar_file
        )

        def load(entry: FileEntry) -> SourceDocument | FailedDocument:
            item = self._load(entry, resolver)
            if isinstance(item, FailedDocument) and cursor_files is not None:
                cursor_files.pop(entry.rel_path, None)
            return item

        for entry in entries:
            if placement_only and entry.rel_path in placement_only:
                yield self._placement_change(
                    entry, resolver, load, (moves or {}).get(entry.rel_path)
                )
            else:
                yield load(entry)

    def _placement_change(
        self,
        entry: FileEntry,
        resolver: PlacementResolver,
        load: Callable[[FileEntry], SourceDocument | FailedDocument],
        moved_from: str | None,
    ) -> Item:
        """The file's new placement, read from sidecars and rules only (no parse)."""
        try:
            placement = resolver.resolve(entry.rel_path)
        except DocumentParseError:
            return load(entry)  # a broken sidecar: the full path withdraws what is stored
        return PlacementChange(
            external_id=entry.rel_path,
            uri=document_url(self.config.url_base, self.root / entry.rel_path, entry.rel_path),
            collection=placement.collection,
            path="/" + entry.rel_path,
            level=placement.level,
            acl=placement.acl,
            metadata=dict(placement.metadata),
            load=lambda: load(entry),
            size_bytes=entry.size,
            moved_from=moved_from,
        )

    def _defaults(self) -> Placement:
        acl = tuple(self.config.acl) if self.config.acl is not None else None
        return Placement(collection=self.config.collection, level=self.config.level, acl=acl)

    def _load(
        self, entry: FileEntry, resolver: PlacementResolver
    ) -> SourceDocument | FailedDocument:
        path = self.root / entry.rel_path
        uri = document_url(self.config.url_base, path, entry.rel_path)
        limit = self.context.max_file_bytes

        try:
            placement: Placement | None = resolver.resolve(entry.rel_path)
        except DocumentParseError as exc:
            # No trustworthy placement (a broken sidecar): withdraw what is stored.
            placement = None
            placement_error = exc.message

        def failed(reason: str) -> FailedDocument:
            if placement is None:
                return FailedDocument(
                    entry.rel_path, uri, reason, size_bytes=entry.size, withdraw=True
                )
            where = DocumentPlacement(
                placement.collection, "/" + entry.rel_path, placement.level, placement.acl
            )
            return FailedDocument(entry.rel_path, uri, reason, entry.size, placement=where)

        if placement is None:
            return failed(placement_error)
        if entry.size == 0:
            return failed("empty file (0 bytes)")
        if entry.size > limit:
            return failed(_too_large(entry.size, limit))
        guard = self.context.parse_guard
        isolate = guard.before(entry.rel_path, entry.state) if guard is not None else False
        parse = parse_in_child if isolate else parse_bytes
        try:
            data = _read_at_most(path, limit)
            parsed = parse(path.suffix, data, self.context.zip_limits)
        except DocumentParseError as exc:
            return failed(exc.message)
        except OSError as exc:
            return failed(f"cannot read file: {exc.strerror or type(exc).__name__}")
        finally:
            if guard is not None:
                guard.after(entry.rel_path)
        if not parsed.has_text:
            return failed("no text content")
        modified = datetime.fromtimestamp(entry.mtime_ns / 1e9, tz=UTC)
        base: dict[str, Any] = {
            "file_name": path.name,
            "extension": path.suffix.lower().lstrip("."),
            "modified": modified.isoformat(),
            **parsed.metadata,
        }
        metadata = {**base, **placement.metadata}
        return SourceDocument(
            external_id=entry.rel_path,
            uri=uri,
            title=parsed.title or path.name,
            content_type=parsed.content_type,
            sections=parsed.sections,
            collection=placement.collection,
            path="/" + entry.rel_path,
            level=placement.level,
            acl=placement.acl,
            metadata=metadata,
            modified_at=modified,
            size_bytes=len(data),
            base_metadata=base,
        )

    def _fingerprint(self) -> str:
        """Changes when anything but the file contents could change what a file yields."""
        shape = self.config.model_dump(
            mode="json",
            exclude={"name", "description", "enabled", "schedule", "watch", "watch_debounce_ms"},
        )
        shape["_max_file_bytes"] = self.context.max_file_bytes
        shape["_parser_version"] = PARSER_VERSION
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def _too_large(size: int, limit: int) -> str:
    return f"file is {size} bytes, larger than the limit of {limit} bytes (ingest.max_file_bytes)"


def _read_at_most(path: Path, limit: int) -> bytes:
    """The file's bytes; a file that grew past the limit since it was listed still fails."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise DocumentParseError(_too_large(len(data), limit) + " (it grew while being read)")
    return data


def _as_state(value: Any) -> list[int] | None:
    """A cursor entry as stored (JSON turns tuples into lists); None when absent."""
    return [int(v) for v in value] if isinstance(value, list | tuple) else None


def _moved_files(
    entries: list[FileEntry], old_files: Mapping[str, Any], old_inodes: Mapping[str, Any]
) -> dict[str, str]:
    """new path -> old path of files whose folder moved: a path new to the cursor whose
    inode, modification time, size and name equal those of a path that disappeared.
    (A renamed file is not a move: its title may come from its name, so it is re-read.)"""
    current = {e.rel_path for e in entries}
    vanished: dict[tuple[int, str, tuple[int, ...]], str] = {}
    for rel, state in old_files.items():
        ino = old_inodes.get(rel)
        old_state = _as_state(state)
        if rel in current or not isinstance(ino, int) or not ino or old_state is None:
            continue
        vanished[(ino, PurePosixPath(rel).name, tuple(old_state))] = rel
    moves: dict[str, str] = {}
    for e in entries:
        if e.rel_path in old_files or not e.ino:
            continue
        old = vanished.pop((e.ino, PurePosixPath(e.rel_path).name, tuple(e.state)), None)
        if old is not None:
            moves[e.rel_path] = old
    return moves


def _under_any(rel_path: str, dirs: set[str]) -> bool:
    if "" in dirs:
        return True
    return any(rel_path.startswith(d + "/") for d in dirs)


__all__ = ["DEFAULT_EXCLUDE", "DEFAULT_INCLUDE", "FilesConnector", "FilesSourceConfig"]
