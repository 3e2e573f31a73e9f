"""The search and document service every door (MCP, REST, CLI) calls.

Hybrid search runs a keyword branch (Postgres full text) and a vector branch (pgvector
HNSW with iterative scans, or an exact scan when the caller may read only a few chunks)
with the caller's access predicate and filters inside both, fuses them by reciprocal rank
(k=60) and keeps the best chunk per document. The keyword branch runs while the query is
being embedded on the embedder's worker thread; nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.errors import NotFound
from policies.access import AccessFilter
from server.db.engine import Database
from server.embeddings import AsyncEmbedder
from server.search import repository as repo
from server.search.schemas import (
    DOCUMENT_URI_PREFIX,
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
from server.search.snippets import headline_options, make_snippet
from server.search.validation import (
    CHUNK_NOT_FOUND,
    DOCUMENT_NOT_FOUND,
    MAX_PREFIX_CHARS,
    check_filters,
    check_int,
    check_query_text,
    check_text,
    decode_cursor,
    encode_cursor,
    parse_chunk_id,
    parse_document_id,
)
from server.settings import Settings

log = logging.getLogger(__name__)

RRF_K = 60
MAX_NEIGHBOURS = 5
MAX_PAGE_SIZE = 500
MAX_COMPLETIONS = 100


@dataclass(frozen=True)
class SearchTuning:
    """Knobs of the vector branch; the defaults are what bench/search_recall.py measured."""

    # Chunks each branch contributes to fusion, per requested hit (at least min_candidates).
    candidates_per_hit: int = 4
    min_candidates: int = 40
    max_candidates: int = 400
    # Below this many allowed chunks, scan them all exactly instead of walking HNSW.
    exact_scan_below: int = 10_000
    # ef_search is max(this, candidates); max_scan_tuples bounds one iterative HNSW scan.
    ef_search: int = 100
    max_scan_tuples: int = 50_000
    # Keyword matching. "all" (web-search syntax, every word) measured best in hybrid on
    # CISI: "any" (OR of the words, ranked by ts_rank_cd, which has no IDF) adds noise that
    # fusion cannot undo. "auto" uses "any" unless the query has web-search syntax.
    keyword_match: Literal["auto", "all", "any"] = "all"


_WEB_SYNTAX = re.compile(r'"|(^|\s)-\w|\sOR\s')


def keyword_match(text: str, mode: Literal["auto", "all", "any"]) -> repo.KeywordMatch:
    if mode != "auto":
        return mode
    return "all" if _WEB_SYNTAX.search(text) else "any"


def _rrf(*rankings: Sequence[repo.Candidate]) -> dict[int, tuple[float, repo.Candidate]]:
    fused: dict[int, tuple[float, repo.Candidate]] = {}
    for ranking in rankings:
        for rank, cand in enumerate(ranking, start=1):
            prev = fused.get(cand.chunk_id)
            score = (prev[0] if prev else 0.0) + 1.0 / (RRF_K + rank)
            fused[cand.chunk_id] = (score, cand)
    return fused


def best_chunk_per_document(
    fused: dict[int, tuple[float, repo.Candidate]],
) -> list[tuple[float, repo.Candidate]]:
    """Fused chunks best first, keeping only the best-scoring chunk of each document."""
    seen: set[uuid.UUID] = set()
    out: list[tuple[float, repo.Candidate]] = []
    for score, cand in sorted(fused.values(), key=lambda x: (-x[0], x[1].chunk_id)):
        if cand.document_id not in seen:
            seen.add(cand.document_id)
            out.append((score, cand))
    return out


def _summary(
    document_id: uuid.UUID,
    title: str,
    uri: str,
    source: str,
    collection: str,
    content_type: str,
    modified_at: datetime | None,
) -> DocumentSummary:
    return DocumentSummary(
        document_id=document_id,
        title=title,
        uri=document_uri(document_id),
        source_uri=uri,
        source=source,
        collection=collection,
        content_type=content_type,
        modified_at=modified_at,
    )


def _doc_summary(row: repo.DocumentRow) -> DocumentSummary:
    return _summary(
        row.document_id,
        row.title,
        row.uri,
        row.source,
        row.collection,
        row.content_type,
        row.modified_at,
    )


def _chunk_text(row: repo.ChunkRow) -> ChunkText:
    return ChunkText(chunk_id=row.chunk_id, ordinal=row.ordinal, heading=row.heading, text=row.text)


class SearchService:
    """Search, fetch and listing for one caller at a time; every method takes its filter."""

    def __init__(
        self,
        db: Database,
        embedder: AsyncEmbedder,
        settings: Settings,
        tuning: SearchTuning | None = None,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self._settings = settings
        self.tuning = tuning or SearchTuning()

    # ------------------------------------------------------------------ search
    async def search(self, access: AccessFilter, query: SearchQuery) -> SearchResult:
        text = check_query_text(query.text)
        top_k = check_int(query.top_k, "top_k", 1, self._settings.mcp.top_k_max)
        filters = check_filters(query.filters)
        t = self.tuning
        limit = min(t.max_candidates, max(t.min_candidates, top_k * t.candidates_per_hit))

        match = keyword_match(text, t.keyword_match)
        keyword = asyncio.ensure_future(self._keyword(access, filters, text, limit, match))
        try:
            embedding = await self._embedder.embed_query(text)
            vector = await self.vector_search(access, filters, embedding.tolist(), limit)
            lexical = await keyword
        finally:
            if not keyword.done():
                keyword.cancel()
        ranked = best_chunk_per_document(_rrf(vector, lexical))
        hits = await self._hydrate(access, text, match, ranked, top_k)
        return SearchResult(query=text, hits=hits)

    async def _keyword(
        self,
        access: AccessFilter,
        filters: SearchFilters,
        text: str,
        limit: int,
        match: repo.KeywordMatch,
    ) -> list[repo.Candidate]:
        async with self._db.sessions() as session:
            return await repo.keyword_candidates(session, access, filters, text, limit, match)

    async def keyword_search(
        self, access: AccessFilter, filters: SearchFilters, text: str, limit: int
    ) -> list[repo.Candidate]:
        """The keyword branch alone (benchmarks and diagnostics)."""
        text = check_query_text(text)
        match = keyword_match(text, self.tuning.keyword_match)
        return await self._keyword(access, check_filters(filters), text, limit, match)

    async def vector_search(
        self, access: AccessFilter, filters: SearchFilters, embedding: Sequence[float], limit: int
    ) -> list[repo.Candidate]:
        """The vector branch alone: the nearest allowed chunks, nearest first."""
        t = self.tuning
        async with self._db.sessions() as session, session.begin():
            allowed = await repo.count_allowed_chunks(session, access, filters, t.exact_scan_below)
            return await repo.vector_candidates(
                session,
                access,
                filters,
                embedding,
                limit,
                ef_search=max(t.ef_search, limit),
                max_scan_tuples=t.max_scan_tuples,
                exact=allowed < t.exact_scan_below,
            )

    async def _hydrate(
        self,
        access: AccessFilter,
        text: str,
        match: repo.KeywordMatch,
        ranked: list[tuple[float, repo.Candidate]],
        top_k: int,
    ) -> tuple[SearchHit, ...]:
        # A spare margin: a row dropped by the re-check (or deleted meanwhile) is replaced.
        wanted = ranked[: top_k * 2]
        snippet_chars = self._settings.mcp.snippet_chars
        async with self._db.sessions() as session:
            rows = await repo.load_chunks(
                session,
                access,
                [c.chunk_id for _, c in wanted],
                query_text=text,
                match=match,
                headline_options=headline_options(snippet_chars),
            )
        hits: list[SearchHit] = []
        for score, cand in wanted:
            row = rows.get(cand.chunk_id)
            if row is None:
                continue
            hits.append(
                SearchHit(
                    document_id=row.document_id,
                    chunk_id=row.chunk_id,
                    title=row.title,
                    uri=document_uri(row.document_id),
                    source_uri=row.uri,
                    snippet=make_snippet(row.headline, row.text, snippet_chars),
                    score=round(score, 6),
                    source=row.source,
                    collection=row.collection,
                    content_type=row.content_type,
                    modified_at=row.modified_at,
                    heading=row.heading,
                )
            )
            if len(hits) == top_k:
                break
        return tuple(hits)

    # --------------------------------------------------------------- documents
    async def fetch_document(
        self, access: AccessFilter, document_id: str, max_chars: int | None = None
    ) -> DocumentView:
        """The whole text and metadata of one document, cut at ``max_chars`` if longer."""
        ceiling = self._settings.mcp.fetch_max_chars
        limit = ceiling if max_chars is None else check_int(max_chars, "max_chars", 1, ceiling)
        ident = parse_document_id(document_id)
        async with self._db.sessions() as session:
            row = await repo.get_document(session, access, ident)
            if row is None:
                raise NotFound(DOCUMENT_NOT_FOUND)
            content = row.content or await repo.document_text_from_chunks(session, access, ident)
        return DocumentView(
            summary=_doc_summary(row),
            text=content[:limit],
            metadata=row.metadata,
            total_chars=len(content),
            truncated=len(content) > limit,
        )

    async def fetch_chunk(
        self, access: AccessFilter, chunk_id: int | str, neighbours: int = 1
    ) -> ChunkView:
        """One chunk with up to ``neighbours`` chunks before and after it."""
        ident = parse_chunk_id(chunk_id)
        around = check_int(neighbours, "neighbours", 0, MAX_NEIGHBOURS)
        async with self._db.sessions() as session:
            ids = await repo.neighbour_chunk_ids(session, access, ident, around)
            rows = await repo.load_chunks(session, access, ids)
        anchor = rows.get(ident)
        if anchor is None:
            raise NotFound(CHUNK_NOT_FOUND)
        ordered = sorted(rows.values(), key=lambda r: r.ordinal)
        return ChunkView(
            summary=_summary(
                anchor.document_id,
                anchor.title,
                anchor.uri,
                anchor.source,
                anchor.collection,
                anchor.content_type,
                anchor.modified_at,
            ),
            chunk=_chunk_text(anchor),
            before=tuple(_chunk_text(r) for r in ordered if r.ordinal < anchor.ordinal),
            after=tuple(_chunk_text(r) for r in ordered if r.ordinal > anchor.ordinal),
        )

    async def list_sources(self, access: AccessFilter) -> tuple[SourceSummary, ...]:
        """Sources with at least one document the caller may read, with their counts."""
        async with self._db.sessions() as session:
            rows = await repo.count_documents(session, access)
        by_source: dict[str, list[repo.CollectionRow]] = {}
        for row in rows:
            by_source.setdefault(row.source, []).append(row)
        return tuple(
            SourceSummary(
                source=name,
                kind=group[0].kind,
                description=group[0].description,
                uri=source_uri(name),
                documents=sum(r.documents for r in group),
                collections=tuple(CollectionCount(r.collection, r.documents) for r in group),
            )
            for name, group in sorted(by_source.items())
        )

    async def list_documents(
        self,
        access: AccessFilter,
        cursor: str | None = None,
        limit: int | None = None,
        source: str | None = None,
    ) -> DocumentPage:
        """One page of the caller's documents by title; pass ``next_cursor`` back for more."""
        size = self._settings.mcp.page_size if limit is None else limit
        size = check_int(size, "limit", 1, MAX_PAGE_SIZE)
        after = decode_cursor(cursor)
        if source is not None:
            source = check_text(source, "source", 200)
        async with self._db.sessions() as session:
            rows, last = await repo.list_documents(
                session, access, after=after, limit=size, source=source
            )
        next_cursor = encode_cursor(*last) if last is not None else None
        return DocumentPage(items=tuple(_doc_summary(r) for r in rows), next_cursor=next_cursor)

    async def complete_documents(
        self, access: AccessFilter, prefix: str, limit: int = 20
    ) -> tuple[DocumentSummary, ...]:
        """Documents whose title or id starts with ``prefix``, for argument completion."""
        prefix = check_text(prefix, "prefix", MAX_PREFIX_CHARS).strip()
        size = check_int(limit, "limit", 1, MAX_COMPLETIONS)
        async with self._db.sessions() as session:
            rows = await repo.complete_documents(
                session, access, prefix.removeprefix(DOCUMENT_URI_PREFIX), size
            )
        return tuple(_doc_summary(r) for r in rows)


__all__ = ["RRF_K", "SearchService", "SearchTuning", "best_chunk_per_document"]
