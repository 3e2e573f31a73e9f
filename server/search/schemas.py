"""The shapes the search and document services take and return.

Frozen dataclasses: the MCP tools, resources, prompts and the CLI shape them into their
own answers. Every ``kb://`` URI is built here, so the format lives in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DOCUMENT_URI_PREFIX = "kb://documents/"
SOURCE_URI_PREFIX = "kb://sources/"


def document_uri(document_id: uuid.UUID | str) -> str:
    return f"{DOCUMENT_URI_PREFIX}{document_id}"


def source_uri(source: str) -> str:
    return f"{SOURCE_URI_PREFIX}{source}"


MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class SearchFilters:
    """Narrowing a caller asks for; applied inside the query together with the access filter.

    ``collections`` match a collection and everything nested under it (``hr`` matches
    ``hr/payroll``). ``metadata`` is equality on the document's metadata values.
    """

    sources: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


SEARCH_MODES = ("hybrid", "keyword", "semantic")


@dataclass(frozen=True)
class SearchQuery:
    """``mode``: ``hybrid`` fuses both legs; ``keyword`` ranks by BM25 alone (exact codes,
    names, identifiers); ``semantic`` by embedding similarity alone. None: the default."""

    text: str
    top_k: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)
    mode: str | None = None


@dataclass(frozen=True)
class SearchHit:
    document_id: uuid.UUID
    chunk_id: int
    title: str
    uri: str
    source_uri: str
    snippet: str
    score: float
    source: str
    collection: str
    content_type: str
    modified_at: datetime | None
    heading: str
    # The passage with matched words marked **like this**, when search.highlight is on.
    highlight: str | None = None


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[SearchHit, ...]


@dataclass(frozen=True)
class DocumentSummary:
    document_id: uuid.UUID
    title: str
    uri: str
    source_uri: str
    source: str
    collection: str
    content_type: str
    modified_at: datetime | None


@dataclass(frozen=True)
class DocumentView:
    summary: DocumentSummary
    text: str
    metadata: Mapping[str, Any]
    total_chars: int
    truncated: bool


@dataclass(frozen=True)
class ChunkText:
    chunk_id: int
    ordinal: int
    heading: str
    text: str


@dataclass(frozen=True)
class ChunkView:
    summary: DocumentSummary
    chunk: ChunkText
    before: tuple[ChunkText, ...]
    after: tuple[ChunkText, ...]


@dataclass(frozen=True)
class CollectionCount:
    collection: str
    documents: int


@dataclass(frozen=True)
class SourceSummary:
    source: str
    kind: str
    description: str
    uri: str
    documents: int
    collections: tuple[CollectionCount, ...]


@dataclass(frozen=True)
class DocumentPage:
    items: tuple[DocumentSummary, ...]
    next_cursor: str | None


__all__ = [
    "DOCUMENT_URI_PREFIX",
    "SEARCH_MODES",
    "SOURCE_URI_PREFIX",
    "ChunkText",
    "ChunkView",
    "CollectionCount",
    "DocumentPage",
    "DocumentSummary",
    "DocumentView",
    "MetadataValue",
    "SearchFilters",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "SourceSummary",
    "document_uri",
    "source_uri",
]
