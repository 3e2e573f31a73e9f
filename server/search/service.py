"""The search and document service every door (MCP, REST, CLI) calls.

Hybrid search (the default mode) runs a keyword leg (BM25 over the inverted index of
migration 0003, ``server/search/keyword.py``) and a vector leg (pgvector HNSW with
iterative scans, or an exact scan when the caller may read only a few chunks) with the
caller's access predicate and filters inside both, fuses them by weighted reciprocal rank
and keeps the best chunk per document. ``keyword`` and ``semantic`` modes run one leg.
The keyword leg runs while the query is being embedded on the embedder's worker thread,
on the same connection and in the same transaction as the vector leg and the hydration
that follow; nothing blocks the event loop. Each hit carries the passage of its chunk that matched.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from policies.access import AccessFilter
from server.db.replicas import SessionSource
from server.embeddings import AsyncEmbedder
from server.observability.metrics import observed_search
from server.search import keyword as kw
from server.search import repository as repo
from server.search import source_tally
from server.search.matched_words import WordTerms, matched_words
from server.search.passages import MatchedWords
from server.search.query_syntax import ParsedQuery, looks_up_identifier, parse_query
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
from server.search.source_counts import NoGeneration, SourceCounts
from server.search.timing import phase
from server.search.validation import (
    CHUNK_NOT_FOUND,
    DOCUMENT_NOT_FOUND,
    MAX_PREFIX_CHARS,
    check_filters,
    check_int,
    check_mode,
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
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search


@dataclass(frozen=True)
class _Listing:
    """A list_sources answer and the count it was built from (to bring it forward)."""

    tally: source_tally.Tally
    summaries: tuple[SourceSummary, ...]


@dataclass(frozen=True)
class SearchTuning:
    """Knobs of the vector branch; the defaults are what bench/search_recall.py measured."""

    # Chunks each branch contributes to fusion, per requested hit (at least min_candidates).
    candidates_per_hit: int = 4
    min_candidates: int = 40
    max_candidates: int = 400
    # Below this many allowed chunks, scan them all exactly instead of walking HNSW: an
    # iterative walk must pass ~candidates/selectivity tuples through the filter, so at
    # 1 % of a million chunks it costs more than reading the 10,000 allowed rows, and its
    # beam holds few allowed rows (recall 0.98 where exact is 1.0).
    exact_scan_below: int = 20_000
    # ... at a corpus of this many chunks; the threshold grows with the square root of the
    # corpus (None: exact_scan_below as is). An exact scan costs ~allowed rows = s x N, a
    # filtered walk ~candidates / s tuples, so they break even near s x N = sqrt(k x N):
    # 20,000 at a million, 6,300 at 100,000 (where a 10 % caller walks: 22 vs 55 ms p50
    # measured), 2,800 at 20,000.
    exact_scan_reference_chunks: int | None = 1_000_000
    # ef_search at ef_search_reference_chunks; max_scan_tuples bounds one iterative scan.
    # 1000 (pgvector's widest): the beam a walk needs grows with the graph, and under a
    # filter it holds only ef x selectivity allowed rows (100 at 10 %: 2.5 times the 40
    # candidates). At a million chunks, 800 gave recall@10 0.947-0.973 unfiltered and
    # 0.937-0.973 at 10 % depending on the HNSW build (0.95 missed on one build of two),
    # 1000 gave 0.987 and 0.957-0.970 on the same build as 0.967 / 0.950-0.967 with 800,
    # p95 under 35 ms either way (docs/benchmarks.md, Findings).
    ef_search: int = 1000
    # Smaller graphs need a narrower beam for the same recall: ef_search scales with the
    # square root of the corpus (316 at 100,000, 141 at 20,000), never below
    # min_ef_search nor the candidates asked for, never above ef_search. At 100,000
    # chunks 200 kept every recall of 800 (1.000 unfiltered, 0.996-1.000 at 10 %) at half
    # the walk's time. None: ef_search at every size.
    ef_search_reference_chunks: int | None = 1_000_000
    min_ef_search: int = 100
    max_scan_tuples: int = 50_000
    # relaxed_order: strict_order dropped recall at 1-10 % (0.79-0.93 where relaxed has
    # 0.94-0.99); candidates are re-sorted in Python anyway.
    iterative_scan: str = "relaxed_order"
    # How long a caller's "is the allowed set below exact_scan_below" answer is reused
    # (0: count before every vector query).
    scope_ttl_s: float = 30.0
    # A search alone in its process may embed a long query on every core (the embedder's
    # embed_query_wide): a semantic search always, a hybrid one when the corpus holds
    # fewer chunks than this (0: never, either). The keyword leg runs beside the
    # embedding and needs a core of its own when it is the longer branch, which it is on
    # big corpora: CISI queries (65 words at the median) at 1,679 chunks, search p50
    # 29.8 -> 24.7 ms and p95 62.6 -> 45.2 with both cores (the keyword leg took 6 ms,
    # the embedding 20); at 20,000 chunks where every CISI word is common, the keyword
    # leg (24.5 ms) outlasted the embedding (19.5) and two threads made the search slower
    # (37.3 -> 38.4 ms). The leg grows with the postings it scores, hence with the
    # corpus; 10,000 sits between the two, on the side of the loss.
    wide_query_below_chunks: int = 10_000

    def __post_init__(self) -> None:
        # pgvector refuses any other width at the first search (hnsw.ef_search 1..1000).
        if not (1 <= self.ef_search <= MAX_EF_SEARCH and self.min_ef_search >= 1):
            raise ValueError(
                f"ef_search must be 1..{MAX_EF_SEARCH} and min_ef_search at least 1, "
                f"got {self.ef_search} and {self.min_ef_search}"
            )


VectorPlan = Literal["exact", "hnsw", "hnsw-then-exact"]


@dataclass(frozen=True)
class VectorBranch:
    """What the vector branch found, nearest first, and how: an exact scan of the allowed
    rows, an HNSW walk, or an HNSW walk that came back short and was redone exactly."""

    candidates: list[repo.Candidate]
    plan: VectorPlan


def _with_corpus(value: int, reference: int | None, corpus_chunks: float | None) -> int:
    """``value`` (set for a corpus of ``reference`` chunks) scaled by the square root of
    ``corpus_chunks / reference``; as set when either is unknown or scaling is off."""
    if reference is None or corpus_chunks is None or corpus_chunks <= 0:
        return value
    return int(value * math.sqrt(corpus_chunks / reference))


def scaled_ef_search(tuning: SearchTuning, corpus_chunks: float | None) -> int:
    """The HNSW beam width for a corpus of ``corpus_chunks`` (the planner's estimate; None
    or negative when never analysed: the full ``ef_search``, the safe side for recall)."""
    top = tuning.ef_search
    scaled = _with_corpus(top, tuning.ef_search_reference_chunks, corpus_chunks)
    return max(min(tuning.min_ef_search, top), min(scaled, top))


def exact_scan_threshold(tuning: SearchTuning, corpus_chunks: float | None) -> int:
    """Allowed chunks below which the vector branch scans exactly, for this corpus size.

    ``corpus_chunks`` is the planner's estimate of the chunk table (None or negative when
    never analysed: the threshold is then ``exact_scan_below`` itself, which on a table
    too new to be analysed means an exact scan, the right plan for a small corpus).
    """
    return _with_corpus(tuning.exact_scan_below, tuning.exact_scan_reference_chunks, corpus_chunks)


def least_broad_share(tuning: SearchTuning, corpus_chunks: float | None) -> float | None:
    """The smallest share of the corpus a caller reads once its allowed set is too big for
    an exact scan (None while the corpus size is unknown): the keyword leg's first pass
    is sized from it (``keyword.first_pass_rows``)."""
    if corpus_chunks is None or corpus_chunks <= 0:
        return None
    return exact_scan_threshold(tuning, corpus_chunks) / corpus_chunks


class ScopeSizes:
    """Per caller and filters: is the allowed set small enough for an exact scan?

    Only the plan depends on the answer, never which rows may come back (the access
    predicate is inside every query), so a stale answer costs time, not correctness:
    too small and the scan is exact but slower; too large and a short HNSW walk is redone
    exactly. Keyed by policy version, principals, API-key narrowing and filters.
    """

    MAX_ENTRIES = 4096

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[Hashable, tuple[bool, float]] = {}

    @staticmethod
    def key(access: AccessFilter, filters: SearchFilters) -> Hashable:
        caller = access.caller
        return (
            access.policy_version,
            caller.principals,
            caller.restrict_sources,
            caller.restrict_collections,
            repr(filters),
        )

    def get(self, key: Hashable) -> bool | None:
        found = self._items.get(key)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def put(self, key: Hashable, small: bool) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._items) >= self.MAX_ENTRIES:
            self._items.clear()
        self._items[key] = (small, time.monotonic() + self.ttl_s)


Ranking = Sequence[repo.Candidate]


def weighted_rrf(
    rankings: Sequence[tuple[float, Ranking]], k: int = RRF_K
) -> dict[int, tuple[float, repo.Candidate]]:
    """Reciprocal rank fusion: each ranking adds weight / (k + rank) to its chunks."""
    fused: dict[int, tuple[float, repo.Candidate]] = {}
    for weight, ranking in rankings:
        for rank, cand in enumerate(ranking, start=1):
            prev = fused.get(cand.chunk_id)
            score = (prev[0] if prev else 0.0) + weight / (k + rank)
            fused[cand.chunk_id] = (score, prev[1] if prev else cand)
    return fused


def keyword_first(lexical: Ranking, vector: Ranking) -> dict[int, tuple[float, repo.Candidate]]:
    """A lookup of an exact code: keyword matches in BM25 order, then the semantic hits.

    Reciprocal rank fusion is too flat to let the exact match decide (rank 1 and rank 2 of
    one leg differ by 1/61 - 1/62), and embeddings rank near misses (ERR-4013 for
    ERR-4031) as high as the match. The fused score stays an RRF-like value in (0, 1].
    """
    fused: dict[int, tuple[float, repo.Candidate]] = {}
    for rank, cand in enumerate([*lexical, *vector], start=1):
        fused.setdefault(cand.chunk_id, (1.0 / (RRF_K + rank), cand))
    return fused


def rank_scored(ranking: Ranking, k: int = RRF_K) -> dict[int, tuple[float, repo.Candidate]]:
    """The keyword leg alone: its BM25 order, scored by rank (1 / (k + rank)).

    A raw BM25 score carries corpus-wide statistics (document frequency, chunk count,
    average length) that include chunks this caller may not read: from one known hit's
    score a caller could work out how many hidden chunks contain a word. Ranks are
    computed among the caller's own rows only, so they carry nothing of the rest.
    """
    return {c.chunk_id: (1.0 / (k + rank), c) for rank, c in enumerate(ranking, start=1)}


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
        db: SessionSource,
        embedder: AsyncEmbedder,
        settings: Settings,
        tuning: SearchTuning | None = None,
        *,
        source_counts: SourceCounts | None = None,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self._settings = settings
        self.tuning = tuning or SearchTuning()
        self.scope_sizes = ScopeSizes(self.tuning.scope_ttl_s)
        # Index terms of the hit words seen so far (passages and highlights).
        self.word_terms = WordTerms()
        # The planner's estimate of the chunk table's rows, re-read at most once a minute.
        self._corpus: tuple[float | None, float] = (None, 0.0)
        # Searches of this service under way (on this event loop): 0 means a new one is
        # alone, with the cores to itself.
        self._searching = 0
        # The runtime's (shared by every service of the process); alone: never cached.
        self.source_counts = (
            SourceCounts(NoGeneration()) if source_counts is None else source_counts
        )

    # ------------------------------------------------------------------ search
    @observed_search  # duration, embed/database/re-check stages, hits (/metrics)
    async def search(self, access: AccessFilter, query: SearchQuery) -> SearchResult:
        text = check_query_text(query.text)
        top_k = check_int(query.top_k, "top_k", 1, self._settings.mcp.top_k_max)
        filters = check_filters(query.filters)
        mode = check_mode(query.mode, self._settings.search.default_mode)
        parsed = parse_query(text)
        t = self.tuning
        limit = min(t.max_candidates, max(t.min_candidates, top_k * t.candidates_per_hit))

        lexical: list[repo.Candidate] = []
        vector: list[repo.Candidate] = []
        # The query's indexed terms, once the keyword leg has weighed them (matched words).
        terms: frozenset[str] | None = None
        # The query is embedded on the embedder's thread while the keyword leg runs; both
        # legs and the hydration then share one connection and one transaction. One
        # connection per search: a pool sized for the admitted calls never has to open
        # (and later close) extra ones under load, and no search holds one connection
        # while it waits for a second.
        embedding_task = (
            asyncio.ensure_future(self._embed(text, wide=self._cores_to_spare(mode)))
            if mode != "keyword"
            else None
        )
        self._searching += 1
        try:
            async with self._db.sessions() as session:
                async with session.begin():
                    if mode != "semantic":
                        lexical, terms = await self._keyword_in(
                            session, access, filters, parsed, limit
                        )
                    tuned: repo.PendingTuning | None = None
                    if embedding_task is not None:
                        with phase("wait for query embedding"):
                            embedding = await embedding_task
                        with phase("vector branch"):
                            branch, tuned = await self._vector(
                                session, access, filters, embedding, limit
                            )
                        with phase("phrase/exclusion check"):
                            vector = await self._honour_syntax(
                                session, access, parsed, branch.candidates
                            )
                    with phase("fusion"):
                        fused = self._fuse(mode, text, lexical, vector)
                        ranked = best_chunk_per_document(fused)
                    with phase("hydration"):
                        hits = await self._hydrate(
                            session, access, parsed.scored, terms, ranked, top_k
                        )
                repo.mark_tuned(tuned)
        finally:
            self._searching -= 1
            if embedding_task is not None:
                if not embedding_task.done():
                    embedding_task.cancel()
                elif not embedding_task.cancelled():
                    embedding_task.exception()  # retrieved: never logged as lost
        return SearchResult(query=text, hits=hits)

    def _fuse(
        self, mode: str, text: str, lexical: list[repo.Candidate], vector: list[repo.Candidate]
    ) -> dict[int, tuple[float, repo.Candidate]]:
        vector = self._above_floor(vector, {c.chunk_id for c in lexical})
        fused: dict[int, tuple[float, repo.Candidate]]
        if mode == "hybrid":
            s = self._settings.search
            if s.lookups_keyword_first and lexical and looks_up_identifier(text):
                fused = keyword_first(lexical, vector)
            else:
                fused = weighted_rrf(
                    [(s.keyword_weight, lexical), (s.semantic_weight, vector)], k=s.rrf_k
                )
        elif mode == "keyword":
            fused = rank_scored(lexical, k=self._settings.search.rrf_k)
        else:
            fused = {c.chunk_id: (1.0 - c.score, c) for c in vector}
        return fused

    def _above_floor(self, vector: list[repo.Candidate], matched: set[int]) -> list[repo.Candidate]:
        """Vector hits at least as similar as the floor, or matched by a query word."""
        floor = self._settings.search.relevance_floor
        if floor <= 0:
            return vector
        return [c for c in vector if 1.0 - c.score >= floor or c.chunk_id in matched]

    async def _honour_syntax(
        self,
        session: AsyncSession,
        access: AccessFilter,
        parsed: ParsedQuery,
        vector: list[repo.Candidate],
    ) -> list[repo.Candidate]:
        # "Phrases" and -exclusions are the caller's own narrowing: the vector leg obeys
        # them too, or a hybrid search would bring back what the caller excluded.
        if not (parsed.phrases or parsed.excluded) or not vector:
            return vector
        ids = [c.chunk_id for c in vector]
        kept = await kw.satisfies_syntax(session, access, ids, parsed)
        return [c for c in vector if c.chunk_id in kept]

    def _cores_to_spare(self, mode: str) -> bool:
        """Whether this search's query may be embedded on every core: no other search is
        under way here, and nothing of its own needs a core meanwhile: a semantic search
        has no keyword leg, and a hybrid one's needs little on a corpus known to be small
        (see ``SearchTuning.wide_query_below_chunks``, which 0 turns off for both)."""
        bound = self.tuning.wide_query_below_chunks
        if self._searching > 0 or bound <= 0:
            return False
        if mode == "semantic":
            return True
        chunks = self._corpus[0]
        return chunks is not None and 0 <= chunks < bound

    async def _embed(self, text: str, *, wide: bool = False) -> list[float]:
        with phase("embed query"):
            vector: list[float] = (await self._embedder.embed_query(text, wide=wide)).tolist()
        return vector

    async def _keyword_in(
        self,
        session: AsyncSession,
        access: AccessFilter,
        filters: SearchFilters,
        parsed: ParsedQuery,
        limit: int,
    ) -> tuple[list[repo.Candidate], frozenset[str]]:
        """The keyword leg's candidates, and the query's terms that some chunk holds."""
        s = self._settings.search
        params = kw.Bm25Params(k1=s.bm25_k1, b=s.bm25_b)
        # The vector leg's answer for this caller, when it has one: a caller known to read
        # more than an exact scan's worth of chunks gets the keyword plan that checks
        # chunks in score order (cheaper the more the caller reads).
        broad = self.scope_sizes.get(ScopeSizes.key(access, filters)) is False
        first = kw.first_pass_rows(limit, self._least_broad_share()) if broad else None
        with phase("keyword branch"):
            if not parsed.scored:
                return [], frozenset()
            with phase("keyword: query weights"):
                weights = await kw.query_weights(session, parsed.scored)
            found = await kw.bm25_candidates(
                session,
                access,
                filters,
                parsed,
                limit,
                params,
                broad=broad,
                scored_first=first,
                weights=weights,
            )
            return found, frozenset(weights.terms)

    def _least_broad_share(self) -> float | None:
        return least_broad_share(self.tuning, self._corpus[0])

    async def keyword_search(
        self, access: AccessFilter, filters: SearchFilters, text: str, limit: int
    ) -> list[repo.Candidate]:
        """The keyword leg alone (benchmarks and diagnostics): BM25, best first."""
        text = check_query_text(text)
        async with self._db.sessions() as session, session.begin():
            found, _ = await self._keyword_in(
                session, access, check_filters(filters), parse_query(text), limit
            )
            return found

    async def vector_search(
        self, access: AccessFilter, filters: SearchFilters, embedding: Sequence[float], limit: int
    ) -> list[repo.Candidate]:
        """The vector branch alone: the nearest allowed chunks, nearest first."""
        return (await self.vector_branch(access, filters, embedding, limit)).candidates

    async def vector_branch(
        self, access: AccessFilter, filters: SearchFilters, embedding: Sequence[float], limit: int
    ) -> VectorBranch:
        """The vector branch alone, with the plan it took (benchmarks and diagnostics)."""
        async with self._db.sessions() as session:
            async with session.begin():
                branch, tuned = await self._vector(session, access, filters, embedding, limit)
            repo.mark_tuned(tuned)
        return branch

    def _scan(self, limit: int, corpus_chunks: float | None) -> repo.ScanTuning:
        t = self.tuning
        return repo.ScanTuning(
            ef_search=max(scaled_ef_search(t, corpus_chunks), limit),
            max_scan_tuples=t.max_scan_tuples,
            iterative_scan=t.iterative_scan,
        )

    async def _vector(
        self,
        session: AsyncSession,
        access: AccessFilter,
        filters: SearchFilters,
        embedding: Sequence[float],
        limit: int,
    ) -> tuple[VectorBranch, repo.PendingTuning | None]:
        """Exact scan for a small allowed set, HNSW with iterative scans otherwise.

        Whether the set is small comes from a capped count cached per caller and filters
        (:class:`ScopeSizes`), so most searches send one statement. If the HNSW walk comes
        back short (the set shrank since it was counted, or the walk hit
        ``max_scan_tuples``), the same query runs again as an exact scan: a restrictive
        caller gets every allowed row whatever the cache or the planner believed.
        """
        with phase("vector: settings"):
            corpus = await self._corpus_chunks(session)
            tuned = await repo.tune_vector_scan(session, self._scan(limit, corpus))
        small = await self._small_scope(session, access, filters, corpus)
        found = await repo.vector_candidates(
            session, access, filters, embedding, limit, exact=small
        )
        plan: VectorPlan = "exact" if small else "hnsw"
        if not small and len(found) < limit:
            found = await repo.vector_candidates(
                session, access, filters, embedding, limit, exact=True
            )
            plan = "hnsw-then-exact"
        return VectorBranch(found, plan), tuned

    async def _small_scope(
        self,
        session: AsyncSession,
        access: AccessFilter,
        filters: SearchFilters,
        corpus_chunks: float | None,
    ) -> bool:
        key = ScopeSizes.key(access, filters)
        known = self.scope_sizes.get(key)
        if known is not None:
            return known
        threshold = exact_scan_threshold(self.tuning, corpus_chunks)
        with phase("vector: capped pre-count"):
            allowed = await repo.count_allowed_chunks(session, access, filters, threshold)
        small = allowed < threshold
        self.scope_sizes.put(key, small)
        return small

    async def _corpus_chunks(self, session: AsyncSession) -> float | None:
        estimate, read_at = self._corpus
        if time.monotonic() - read_at > 60.0:
            estimate = await repo.estimated_chunks(session)
            self._corpus = (estimate, time.monotonic())
        return estimate

    async def _hydrate(
        self,
        session: AsyncSession,
        access: AccessFilter,
        scored_text: str,
        query_terms: frozenset[str] | None,
        ranked: list[tuple[float, repo.Candidate]],
        top_k: int,
    ) -> tuple[SearchHit, ...]:
        # A spare margin: a row dropped by the re-check (or deleted meanwhile) is replaced.
        wanted = ranked[: top_k * 2]
        chars = self._settings.mcp.snippet_chars
        with phase("hydration: load + re-check"):
            rows = await repo.load_chunks(
                session, access, [c.chunk_id for _, c in wanted], keep=top_k
            )
        kept = [(score, rows[c.chunk_id]) for score, c in wanted if c.chunk_id in rows]
        kept = kept[:top_k]
        with phase("hydration: matched words"):
            matched = await matched_words(
                session,
                {r.chunk_id: r.text for _, r in kept},
                scored_text,
                memo=self.word_terms,
                query_terms=query_terms,
            )
        marked = self._settings.search.highlight
        hits: list[SearchHit] = []
        for score, row in kept:
            words_of = MatchedWords(matched.get(row.chunk_id, ()))
            passage = words_of.passage(row.text, chars)
            hits.append(
                SearchHit(
                    document_id=row.document_id,
                    chunk_id=row.chunk_id,
                    title=row.title,
                    uri=document_uri(row.document_id),
                    source_uri=row.uri,
                    snippet=passage,
                    score=round(score, 6),
                    source=row.source,
                    collection=row.collection,
                    content_type=row.content_type,
                    modified_at=row.modified_at,
                    heading=row.heading,
                    highlight=words_of.highlight(passage) if marked else None,
                )
            )
        return tuple(hits)

    # --------------------------------------------------------------- documents
    async def fetch_document(
        self, access: AccessFilter, document_id: str, max_chars: int | None = None
    ) -> DocumentView:
        """The whole text and metadata of one document, cut at ``max_chars`` if longer."""
        ceiling = self._settings.mcp.fetch_max_chars
        limit = ceiling if max_chars is None else check_int(max_chars, "max_chars", 1, ceiling)
        ident = parse_document_id(document_id)
        # Committed, not rolled back: a rollback makes psycopg drop the connection's
        # prepared statements (see repository.custom_plans).
        async with self._db.sessions() as session, session.begin():
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
        async with self._db.sessions() as session, session.begin():
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
        """Sources with at least one document the caller may read, with their counts.

        Cached per caller (:mod:`.source_counts`); after documents were written the cached
        count is brought up to date from the change log (:mod:`.source_tally`), or counted
        afresh. The answer is immutable, so the cached tuple itself is returned.
        """
        listing = await self.source_counts.get(
            access,
            lambda: self._fresh_listing(access),
            lambda old: self._listing_after(access, old),
        )
        return listing.summaries

    async def _fresh_listing(self, access: AccessFilter) -> _Listing:
        async with self._db.sessions() as session, session.begin():
            tally = await source_tally.count(session, access)
            return await self._listing(session, tally, {})

    async def _listing_after(self, access: AccessFilter, old: _Listing) -> _Listing | None:
        """``old`` brought forward, or None if it cannot be (then it is counted afresh)."""
        async with self._db.sessions() as session, session.begin():
            tally = await source_tally.bring_forward(session, access, old.tally)
            if tally is None:
                return None
            # Kind and description of sources already listed are kept (as when cached).
            known = {s.source: (s.kind, s.description) for s in old.summaries}
            return await self._listing(session, tally, known)

    @staticmethod
    async def _listing(
        session: AsyncSession, tally: source_tally.Tally, known: dict[str, tuple[str, str]]
    ) -> _Listing:
        unknown = sorted({s for s, _ in tally.counts} - known.keys())
        described = {**known, **await repo.describe_sources(session, unknown)}
        by_source: dict[str, list[tuple[str, int]]] = {}
        for (source, collection), n in sorted(tally.counts.items()):
            by_source.setdefault(source, []).append((collection, n))
        summaries = tuple(
            SourceSummary(
                source=name,
                kind=described.get(name, ("", ""))[0],
                description=described.get(name, ("", ""))[1],
                uri=source_uri(name),
                documents=sum(n for _, n in group),
                collections=tuple(CollectionCount(c, n) for c, n in group),
            )
            for name, group in by_source.items()
        )
        return _Listing(tally, summaries)

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
        async with self._db.sessions() as session, session.begin():
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
        async with self._db.sessions() as session, session.begin():
            rows = await repo.complete_documents(
                session, access, prefix.removeprefix(DOCUMENT_URI_PREFIX), size
            )
        return tuple(_doc_summary(r) for r in rows)


__all__ = [
    "RRF_K",
    "ScopeSizes",
    "SearchService",
    "SearchTuning",
    "VectorBranch",
    "VectorPlan",
    "best_chunk_per_document",
    "exact_scan_threshold",
    "keyword_first",
    "least_broad_share",
    "scaled_ef_search",
    "weighted_rrf",
]
