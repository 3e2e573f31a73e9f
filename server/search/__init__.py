"""Search and document reads: the service layer every door (MCP, REST, CLI) calls."""

from server.search.schemas import (
    ChunkText,
    ChunkView,
    CollectionCount,
    DocumentPage,
    DocumentSummary,
    DocumentView,
    SearchFilters,
    SearchHit,
    SearchQuery,
    SearchResult,
    SourceSummary,
    document_uri,
    source_uri,
)
from server.search.service import SearchService, SearchTuning
from server.search.validation import CHUNK_NOT_FOUND, DOCUMENT_NOT_FOUND, make_filters

__all__ = [
    "CHUNK_NOT_FOUND",
    "DOCUMENT_NOT_FOUND",
    "ChunkText",
    "ChunkView",
    "CollectionCount",
    "DocumentPage",
    "DocumentSummary",
    "DocumentView",
    "SearchFilters",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "SearchService",
    "SearchTuning",
    "SourceSummary",
    "document_uri",
    "make_filters",
    "source_uri",
]
