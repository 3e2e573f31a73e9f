"""What the MCP tools take and return, as pydantic models (they become the JSON schemas).

The output shapes follow what ChatGPT connectors and deep-research clients expect: ``search``
returns ``results`` whose items carry ``id``, ``title``, ``url`` and ``text``; ``fetch`` takes
one ``id`` and returns ``id``, ``title``, ``text``, ``url`` and ``metadata``. Everything else
(``uri``, ``score``, ``source`` ...) is extra and ignored by clients that do not know it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.search.schemas import (
    ChunkText,
    ChunkView,
    DocumentSummary,
    DocumentView,
    SearchHit,
    SourceSummary,
)

CHUNK_ID_PREFIX = "chunk:"


def chunk_ref(chunk_id: int) -> str:
    """The id ``fetch`` accepts for one chunk (``chunk:123``)."""
    return f"{CHUNK_ID_PREFIX}{chunk_id}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchFiltersInput(_Model):
    """Optional narrowing of a search; every given filter must match."""

    sources: list[str] | None = Field(
        default=None, description="Only these sources (names as listed by list_sources)."
    )
    collections: list[str] | None = Field(
        default=None,
        description="Only these collections; a collection also matches its sub-collections.",
    )
    content_types: list[str] | None = Field(
        default=None, description="Only these MIME types, e.g. application/pdf or text/markdown."
    )
    modified_after: str | None = Field(
        default=None, description="ISO 8601 date or date-time; only documents modified after it."
    )
    modified_before: str | None = Field(
        default=None, description="ISO 8601 date or date-time; only documents modified before it."
    )
    metadata: dict[str, str | int | float | bool] | None = Field(
        default=None, description="Exact matches on document metadata, e.g. {'department': 'hr'}."
    )


class SearchResultItem(_Model):
    id: str = Field(description="Document id; pass it to fetch for the whole document.")
    title: str
    url: str = Field(description="Where the document lives in its source system (URL or path).")
    uri: str = Field(description="kb:// resource URI of the document (resources/read).")
    text: str = Field(
        description="The passage that matched: whole sentences, plain text, at most the "
        "snippet limit."
    )
    chunk_id: str = Field(description="Id of the matching passage; fetch it for its neighbours.")
    heading: str = Field(description="Section heading of the passage, if any.")
    score: float = Field(description="Relevance (higher is better); comparable within one search.")
    source: str
    collection: str
    content_type: str
    modified: str | None = Field(description="Last modification time (ISO 8601), if known.")
    highlight: str | None = Field(
        default=None, description="The passage with matched words marked **like this** (if on)."
    )

    @classmethod
    def of(cls, hit: SearchHit) -> SearchResultItem:
        return cls(
            id=str(hit.document_id),
            title=hit.title,
            url=hit.source_uri,
            uri=hit.uri,
            text=hit.snippet,
            chunk_id=chunk_ref(hit.chunk_id),
            heading=hit.heading,
            score=round(hit.score, 6),
            source=hit.source,
            collection=hit.collection,
            content_type=hit.content_type,
            modified=_iso(hit.modified_at),
            highlight=hit.highlight,
        )


class SearchOutput(_Model):
    results: list[SearchResultItem]


class Passage(_Model):
    chunk_id: str
    ordinal: int = Field(description="Position of the passage within its document (0-based).")
    heading: str
    text: str

    @classmethod
    def of(cls, chunk: ChunkText) -> Passage:
        return cls(
            chunk_id=chunk_ref(chunk.chunk_id),
            ordinal=chunk.ordinal,
            heading=chunk.heading,
            text=chunk.text,
        )


class FetchOutput(_Model):
    id: str = Field(description="Document id.")
    title: str
    text: str = Field(description="The document text, or the passage with its neighbours.")
    url: str = Field(description="Where the document lives in its source system (URL or path).")
    uri: str = Field(description="kb:// resource URI of the document.")
    metadata: dict[str, Any] = Field(
        description="source, collection, content_type, modified and the document's own metadata."
    )
    truncated: bool = Field(description="True when text was cut at the server's size limit.")
    total_chars: int = Field(description="Length of the whole document text.")
    passage: Passage | None = Field(
        default=None, description="When a chunk id was fetched: the passage itself."
    )
    neighbours: list[Passage] = Field(
        default_factory=list, description="When a chunk id was fetched: the passages around it."
    )


def _summary_metadata(summary: DocumentSummary) -> dict[str, Any]:
    return {
        "source": summary.source,
        "collection": summary.collection,
        "content_type": summary.content_type,
        "modified": _iso(summary.modified_at),
    }


def fetch_of_document(view: DocumentView) -> FetchOutput:
    s = view.summary
    return FetchOutput(
        id=str(s.document_id),
        title=s.title,
        text=view.text,
        url=s.source_uri,
        uri=s.uri,
        metadata={**dict(view.metadata), **_summary_metadata(s)},
        truncated=view.truncated,
        total_chars=view.total_chars,
    )


def fetch_of_chunk(view: ChunkView) -> FetchOutput:
    s = view.summary
    ordered = [*view.before, view.chunk, *view.after]
    text = "\n\n".join(c.text for c in ordered)
    return FetchOutput(
        id=str(s.document_id),
        title=s.title,
        text=text,
        url=s.source_uri,
        uri=s.uri,
        metadata=_summary_metadata(s),
        truncated=False,
        total_chars=len(text),
        passage=Passage.of(view.chunk),
        neighbours=[Passage.of(c) for c in (*view.before, *view.after)],
    )


class CollectionInfo(_Model):
    name: str
    documents: int = Field(description="Documents in this collection that you may read.")


class SourceInfo(_Model):
    name: str
    kind: str = Field(description="Connector kind (files, sql, ...).")
    description: str
    uri: str = Field(description="kb:// resource listing this source's documents.")
    documents: int = Field(description="Documents in this source that you may read.")
    collections: list[CollectionInfo]

    @classmethod
    def of(cls, source: SourceSummary) -> SourceInfo:
        return cls(
            name=source.source,
            kind=source.kind,
            description=source.description,
            uri=source.uri,
            documents=source.documents,
            collections=[
                CollectionInfo(name=c.collection, documents=c.documents) for c in source.collections
            ],
        )


class SourcesOutput(_Model):
    sources: list[SourceInfo]


__all__ = [
    "CHUNK_ID_PREFIX",
    "CollectionInfo",
    "FetchOutput",
    "Passage",
    "SearchFiltersInput",
    "SearchOutput",
    "SearchResultItem",
    "SourceInfo",
    "SourcesOutput",
    "chunk_ref",
    "fetch_of_chunk",
    "fetch_of_document",
]
