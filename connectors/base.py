"""The connector contract: what a source yields and how the pipeline asks for it.

Three capabilities, so a kind can implement what its source supports:

* ``full_load()``: every document the source has now;
* ``poll(cursor)``: documents changed since an opaque cursor, plus the next cursor;
* ``scan_ids()``: the external ids that still exist, for deletion detection.

Connectors are blocking (drivers, parsers); the pipeline runs them on worker threads.
Every document carries its ACL in the server's principal namespace. ``acl=None`` means the
source could not tell: such a document is visible to admins only until a policy says more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from connectors.config import SourceConfigBase
from connectors.path_fence import PathFence
from connectors.zip_limits import DEFAULT_ZIP_LIMITS, ZipLimits


@dataclass(frozen=True)
class Section:
    """A run of text under a heading path, e.g. (("Handbook", "Leave"), "You may take ...")."""

    text: str
    headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceDocument:
    external_id: str
    uri: str
    title: str
    content_type: str
    sections: tuple[Section, ...]
    collection: str
    path: str = ""
    level: int = 0
    acl: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    modified_at: datetime | None = None
    size_bytes: int = 0
    # The metadata the document has before its placement's (a sidecar's or a rule's) is
    # merged in; kept so a placement change can be applied later without reading the file.
    # None: the connector does not separate the two (SQL rows are re-read anyway).
    base_metadata: Mapping[str, Any] | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text)

    @property
    def content_hash(self) -> str:
        """Changes when anything that lands in the index changes (text, ACL, placement)."""
        h = hashlib.sha256()
        for part in (
            self.title,
            self.content_type,
            self.collection,
            self.path,
            str(self.level),
            "\x1f".join(sorted(self.acl)) if self.acl is not None else "\x00unknown",
            repr(sorted((str(k), repr(v)) for k, v in self.metadata.items())),
        ):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        for s in self.sections:
            h.update("\x1f".join(s.headings).encode("utf-8", "surrogatepass"))
            h.update(b"\x1d")
            h.update(s.text.encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        return h.hexdigest()

    @property
    def text_hash(self) -> str:
        """Changes when what is chunked and embedded changes (title, type, sections), and
        only then: two versions with equal text hashes share their chunks and vectors."""
        h = hashlib.sha256()
        for part in (self.title, self.content_type):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        for s in self.sections:
            h.update("\x1f".join(s.headings).encode("utf-8", "surrogatepass"))
            h.update(b"\x1d")
            h.update(s.text.encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        return h.hexdigest()

    @property
    def authz_hash(self) -> str:
        """Changes when who may read the document, or where it lives, changes."""
        return authorization_hash(
            self.uri, self.collection, self.path, self.level, self.acl, self.metadata
        )


def authorization_hash(
    uri: str,
    collection: str,
    path: str,
    level: int,
    acl: Sequence[str] | None,
    metadata: Mapping[str, Any],
) -> str:
    """The authorization attributes of a document (and its address) as one digest."""
    h = hashlib.sha256()
    for part in (
        uri,
        collection,
        path,
        str(level),
        "\x1f".join(sorted(acl)) if acl is not None else "\x00unknown",
        repr(sorted((str(k), repr(v)) for k, v in metadata.items())),
    ):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()


def placement_hash(text_hash: str, authz_hash: str) -> str:
    """The stored hash of a document whose placement was applied without reading its text:
    a later read that yields the same text and authorization compares equal to it."""
    return "p:" + hashlib.sha256(f"{text_hash}\x1e{authz_hash}".encode()).hexdigest()


@dataclass(frozen=True)
class PlacementChange:
    """A document whose content the source says is unchanged but whose authorization or
    place did change (a sidecar edited above it; its folder moved): the pipeline applies
    the new attributes to what is stored, without parsing or embedding.

    ``metadata`` is the placement's own metadata, merged over the stored document's base
    metadata. ``moved_from`` names the stored document this one was (a folder move): it is
    re-homed under ``external_id``. ``load`` reads the document for real, for when nothing
    usable is stored (a document that failed before, or one stored by an older version)."""

    external_id: str
    uri: str
    collection: str
    path: str
    level: int
    acl: tuple[str, ...] | None
    metadata: Mapping[str, Any]
    load: Callable[[], SourceDocument | FailedDocument]
    size_bytes: int = 0
    moved_from: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where a document belongs and who may read it, as the source says now."""

    collection: str
    path: str
    level: int
    acl: tuple[str, ...] | None


@dataclass(frozen=True)
class FailedDocument:
    """A document the connector saw but could not read; recorded, the run goes on.

    A stored earlier version must not keep serving under an authorization the source has
    since changed: ``placement`` (when the source could still tell it) is applied to what
    is stored; ``withdraw`` (it could not: a broken sidecar, an ACL cell that is no
    principal) takes the stored version offline."""

    external_id: str
    uri: str
    reason: str
    size_bytes: int = 0
    placement: Placement | None = None
    withdraw: bool = False


Item = SourceDocument | FailedDocument | PlacementChange


class ParseGuard(Protocol):
    """Brackets the parse of one file so a file that kills the process cannot do it twice.

    ``before`` records that the parse started and answers whether the file must be parsed
    in a child process (its last parse died with the worker, and it is unchanged since:
    :mod:`connectors.isolated_parse`); ``after`` records that it ended (either way)."""

    def before(self, external_id: str, state: list[int]) -> bool: ...

    def after(self, external_id: str) -> None: ...


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector gets besides its own configuration."""

    base_dir: Path  # relative paths in a source config resolve against this
    max_file_bytes: int  # larger documents fail with a reason instead of being read
    # ZIP containers inflating past these fail before a parser opens them (zip bombs).
    zip_limits: ZipLimits = DEFAULT_ZIP_LIMITS
    environ: Mapping[str, str] = field(default_factory=dict)  # for ${VAR} credential references
    # Set for sources added at run time: the folders they may read; None: unrestricted.
    fence: PathFence | None = None
    # Said after "variable X is not set" (for run-time sources: only an allow-list is given).
    environ_note: str = ""
    # Told before a document is parsed and after; may refuse one (see server.ingest.crash_guard).
    parse_guard: ParseGuard | None = None


@runtime_checkable
class Connector(Protocol):
    """Constructed as ``Kind(config, context)``; blocking; closed after each sync."""

    kind: ClassVar[str]
    config_model: ClassVar[type[SourceConfigBase]]

    def check(self) -> None:
        """Validate the configuration against the source (directory exists, table and
        columns exist, query is a single SELECT). Raise ConnectorError with the reason."""
        ...

    def full_load(self) -> Iterator[Item]: ...

    def poll(self, cursor: Mapping[str, Any] | None) -> tuple[Iterator[Item], Mapping[str, Any]]:
        """Documents changed since ``cursor``; returns the items and the cursor to store
        once every item has been consumed and committed."""
        ...

    def scan_ids(self) -> set[str]:
        """External ids that exist at the source now (deletion detection)."""
        ...

    def close(self) -> None: ...


__all__ = [
    "Connector",
    "ConnectorContext",
    "FailedDocument",
    "Item",
    "ParseGuard",
    "Placement",
    "PlacementChange",
    "Section",
    "SourceDocument",
    "authorization_hash",
    "placement_hash",
]
