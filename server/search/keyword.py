"""The BM25 keyword leg: one SQL statement over the inverted index of migration 0003.

Scoring is Okapi BM25 with Lucene's always-positive IDF,

    score(c) = sum over query terms t of  qtf(t) * idf(t) * tf * (k1 + 1)
                                          / (tf + k1 * (1 - b + b * len / avgdl))
    idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))

with ``df``, ``N`` and ``avgdl`` read from the statistics tables the chunk triggers keep
exact, and ``tf``/``len`` from the postings. The query is tokenised by the same SQL
function that indexed the chunks. The caller's access predicate and filters are joined in
before GROUP BY and LIMIT, so the top-k are the best among the rows the caller may read.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Float,
    FromClause,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    join,
    literal,
    not_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Grouping

from policies.access import AccessFilter, AuthzColumns
from server.db.models import Bm25Corpus, Bm25Posting, Bm25Term, Chunk
from server.search.query_syntax import ParsedQuery
from server.search.repository import (
    STATEMENTS,
    Candidate,
    chunk_predicate,
    chunk_scope_for,
    custom_plans,
    plain_rows,
)
from server.search.schemas import SearchFilters
from server.search.timing import phase


@dataclass(frozen=True)
class Bm25Params:
    k1: float = 1.2
    b: float = 0.75


def _syntax_conditions(query: ParsedQuery) -> list[ColumnElement[bool]]:
    # Postgres full text (the chunk's tsvector) checks phrases: it keeps word positions.
    conditions: list[ColumnElement[bool]] = []
    for phrase in query.phrases:
        conditions.append(Chunk.tsv.bool_op("@@")(func.phraseto_tsquery("english", phrase)))
    for word in query.excluded:
        conditions.append(not_(Chunk.tsv.bool_op("@@")(func.plainto_tsquery("english", word))))
    return conditions


# Transaction-local, set by the weights statement itself (no round trip of its own):
# parallel workers cost more to start than the scoring statement takes. The search goes
# on in the same transaction (the vector leg, the hydration), so after scoring the
# setting goes back to the configured value (DEFAULT: what the session started with).
_NO_PARALLEL = func.set_config("max_parallel_workers_per_gather", "0", True)
_PARALLEL_AS_CONFIGURED = text("SET LOCAL max_parallel_workers_per_gather TO DEFAULT")


@dataclass(frozen=True)
class QueryWeights:
    """Each query term with its weight qtf * idf, the corpus' average chunk length, and the
    terms' postings in all (at least the number of chunks that hold any of them)."""

    terms: tuple[str, ...]
    weights: tuple[float, ...]
    avgdl: float
    postings: int = 0


def _weights_statement() -> Select[Any]:
    words = (
        func.kb_bm25_terms(bindparam("query_text", type_=Text))
        .table_valued("term")
        .render_derived("q")
    )
    qt = select(words.c.term, func.count().label("qtf")).group_by(words.c.term).subquery("qt")
    df = select(Bm25Term.df).where(Bm25Term.term == qt.c.term, Bm25Term.df > 0).lateral("df")
    return (
        select(
            qt.c.term,
            qt.c.qtf,
            df.c.df,
            Bm25Corpus.chunks,
            Bm25Corpus.total_len,
            _NO_PARALLEL.label("tuned"),
        )
        .select_from(qt)
        .join(df, true())
        .join(Bm25Corpus, true())
        .order_by(qt.c.term)
    )


# Built once: the same for every query (the text is a parameter), so SQLAlchemy neither
# rebuilds it nor recomputes its cache key per search.
_WEIGHTS = _weights_statement()


async def query_weights(session: AsyncSession, text: str) -> QueryWeights:
    """Tokenise the query (in the database, with the indexing tokeniser) and weigh its terms.

    A separate statement, so the scoring statement gets the terms as a constant array and
    the planner sees exactly how many there are and how long their posting lists are.
    Each term's ``df`` is one primary-key lookup (LATERAL): the planner cannot estimate
    how many terms the tokeniser yields and would otherwise sort the whole term table.
    Its plan does not depend on the caller, so it may be prepared.
    """
    rows = await plain_rows(session, _WEIGHTS, {"query_text": text})
    if not rows:
        return QueryWeights((), (), 1.0)
    n = max(int(rows[0].chunks), 1)
    avgdl = max(int(rows[0].total_len) / n, 1.0)
    weights = tuple(r.qtf * math.log(1.0 + (n - r.df + 0.5) / (r.df + 0.5)) for r in rows)
    postings = sum(int(r.df) for r in rows)
    return QueryWeights(tuple(r.term for r in rows), weights, avgdl, postings)


# Term counts the merged score-order statement is built for, each padded with NULL terms
# (which match nothing): one statement per count and caller, not one per query length. A
# query with more terms takes the statement with the terms as an array.
TERM_SLOTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
# Postings from which the merged statement is worth its planning (a branch per term):
# below, the array statement's hash table is small and it plans faster. CISI's queries on
# its own 1,677 chunks (a few thousand postings each) ran slower merged; at 100,000
# chunks (25,000-190,000 postings) 10-25 % faster at the median, at 1,000,000 about twice.
MERGE_FROM_POSTINGS = 20_000


def term_slots(terms: int) -> int | None:
    """The smallest of :data:`TERM_SLOTS` that holds ``terms`` (None: more than all)."""
    return next((n for n in TERM_SLOTS if n >= terms), None)


def merged_slots(weights: QueryWeights) -> int | None:
    """The slots of the merged statement for these terms, or None for the array one."""
    if weights.postings < MERGE_FROM_POSTINGS:
        return None
    return term_slots(len(weights.terms))


# How many allowed rows the first pass expects per row wanted, at the caller's least share.
FIRST_PASS_MARGIN = 4


def first_pass_rows(limit: int, least_share: float | None) -> int | None:
    """How many of the best scored chunks a broad caller's first pass checks.

    ``least_share``: the smallest share of the chunks the caller can read and still be
    broad (the exact-scan threshold over the corpus size), or None when unknown (then no
    first pass). The pass expects ``least_share x rows`` allowed among them and wants
    ``FIRST_PASS_MARGIN x limit``, so a second pass stays rare, and needed only by a
    caller whose readable chunks score worse than the rest.
    """
    if least_share is None or least_share <= 0:
        return None
    return max(limit, math.ceil(FIRST_PASS_MARGIN * limit / min(least_share, 1.0)))


async def bm25_candidates(
    session: AsyncSession,
    access: AccessFilter,
    filters: SearchFilters,
    query: ParsedQuery,
    limit: int,
    params: Bm25Params,
    *,
    broad: bool = False,
    scored_first: int | None = None,
    weights: QueryWeights | None = None,
) -> list[Candidate]:
    """The ``limit`` best allowed chunks by BM25, best first. Call inside a transaction.

    ``broad``: the caller is known to read many chunks (the vector leg's cached scope
    size), so the chunks are scored first and checked in score order until ``limit`` are
    allowed (:func:`_probe_in_score_order`); otherwise every matching chunk is checked and
    the allowed ones scored (:func:`_score_allowed`). Both return the same rows.
    ``scored_first`` (with ``broad``): check the best this many scored chunks first, and
    all of them only if fewer than ``limit`` of those are allowed (see
    :func:`first_pass_rows`); the same rows either way.
    ``weights``: :func:`query_weights` of ``query.scored``, if the caller already has them.
    """
    if not query.scored:
        return []
    qw = weights
    if qw is None:
        with phase("keyword: query weights"):
            qw = await query_weights(session, query.scored)
    if not qw.terms:
        return []
    k1, b = params.k1, params.b
    slots = merged_slots(qw) if broad else None
    stmt = _scoring_statement(access, filters, query, k1, b, broad, slots)
    values: dict[str, Any] = {"len_weight": k1 * b / qw.avgdl, "limit": limit}
    if slots is None:
        values.update(terms=list(qw.terms), weights=list(qw.weights))
    else:
        padding = [None] * (slots - len(qw.terms))
        values.update(zip((f"t{i}" for i in range(slots)), [*qw.terms, *padding], strict=True))
        values.update(zip((f"w{i}" for i in range(slots)), [*qw.weights, *padding], strict=True))
    # The score-order plan is the same whatever the caller reads (the shape is fixed by
    # its fences), so it may be prepared; the other is planned with this caller's values
    # every time (see repository.custom_plans).
    planning = nullcontext() if broad else custom_plans(session)
    with phase("keyword: scoring"):
        async with planning:
            if not broad:
                rows = await plain_rows(session, stmt, values)
            else:
                # A bound at or above the terms' postings (so at or above the chunks they
                # score) would change nothing but the number of statements.
                first = (
                    scored_first
                    if scored_first is not None and scored_first < qw.postings
                    else None
                )
                rows = await plain_rows(session, stmt, {**values, "scored_first": first})
                if first is not None and len(rows) < limit:
                    # Too few allowed among the best scored: all of them, as without it.
                    rows = await plain_rows(session, stmt, {**values, "scored_first": None})
    await session.execute(_PARALLEL_AS_CONFIGURED)
    return [Candidate(r.chunk_id, r.document_id, float(r.score)) for r in rows]


def _scoring_statement(
    access: AccessFilter,
    filters: SearchFilters,
    query: ParsedQuery,
    k1: float,
    b: float,
    broad: bool,
    slots: int | None = None,
) -> Executable:
    """The scoring statement for this caller and shape; terms, weights, the length weight
    (k1 * b / avgdl) and the limit are parameters. ``slots`` (with ``broad``): the
    score-order statement over that many terms given one by one (:func:`_merged_scores`)
    instead of as arrays."""
    predicate = chunk_predicate(access)

    def build() -> Executable:
        allowed = and_(chunk_scope_for(predicate, filters), *_syntax_conditions(query))
        limit = bindparam("limit", type_=Integer)
        if broad and slots is not None:
            return _readable_in_order(_merged_scores(slots, k1, b), allowed, limit)
        # term = ANY(constant array): the planner estimates each term's posting list from
        # the column statistics (a join to unnest() would be a blind guess) and can choose
        # a hash join against the caller's allowed chunks when the lists are long.
        terms = bindparam("terms", type_=ARRAY(Text))
        tf = cast(Bm25Posting.tf, Float)
        length = cast(Bm25Posting.len, Float)
        norm = literal(k1 * (1.0 - b)) + bindparam("len_weight", type_=Float) * length
        matching = Bm25Posting.term == func.any(terms)
        if broad:
            # The scored postings are fenced off from the chunks, so the planner's guess
            # for a join to unnest() decides nothing here, and each posting gets its
            # term's weight from the join instead of array_position comparing its term
            # with every query term before it (CISI queries, 12 terms at the median, on
            # 20,000 chunks: scoring p50 57.5 -> 48.2 ms, p95 161 -> 110 ms).
            by_term = (
                func.unnest(terms, bindparam("weights", type_=ARRAY(Float)))
                .table_valued(column("term", Text), column("weight", Float))
                .render_derived("q")
            )
            score = func.sum(by_term.c.weight * tf * (k1 + 1.0) / (tf + norm))
            postings = join(Bm25Posting, by_term, by_term.c.term == Bm25Posting.term)
            return _probe_in_score_order(postings, score, matching, allowed, limit)
        weights = Grouping(bindparam("weights", type_=ARRAY(Float)))
        weight = weights[func.array_position(terms, Bm25Posting.term)]
        score = func.sum(weight * tf * (k1 + 1.0) / (tf + norm))
        return _score_allowed(score, matching, allowed, limit)

    if query.phrases or query.excluded:
        # Their text is part of the statement: one per query, not worth keeping.
        return build()
    return STATEMENTS.get(predicate, ("bm25", broad, slots, k1, b, repr(filters)), build)


def _score_allowed(
    score: ColumnElement[Any],
    matching: ColumnElement[bool],
    allowed: ColumnElement[bool],
    limit: ColumnElement[int],
) -> Executable:
    """Every chunk holding a query term is checked against the caller's predicate, and the
    allowed ones are scored: the planner may instead scan the allowed chunks and hash-join
    the postings, which wins when the caller reads few chunks and the terms are common."""
    return (
        select(Bm25Posting.chunk_id, Chunk.document_id, score.label("score"))
        .join(Chunk, Chunk.id == Bm25Posting.chunk_id)
        .where(matching, allowed)
        .group_by(Bm25Posting.chunk_id, Chunk.document_id)
        .order_by(score.desc(), Bm25Posting.chunk_id)
        .limit(limit)
    )


def _probe_in_score_order(
    postings: FromClause,
    score: ColumnElement[Any],
    matching: ColumnElement[bool],
    allowed: ColumnElement[bool],
    limit: ColumnElement[int],
) -> Executable:
    """The postings alone are scored (an index-only scan), sorted, and each chunk in score
    order is checked against the caller's predicate until ``limit`` pass.

    A caller who reads a share s of the chunks costs about limit / s primary-key probes
    instead of one per matching chunk (about 2,400 for a four-word query on 20,000 chunks;
    a corpus-wide reader's scoring went from 7.7 to 2.4 ms). The OFFSET 0 fences keep the
    planner from flattening the subqueries into a join it would order afterwards: the
    nested loop reads the scored chunks in order and the LIMIT stops it. Ties and the
    rows returned are those of :func:`_score_allowed` (score, then chunk id).
    The scored chunks stop at the ``scored_first`` best (NULL: all): a bounded sort (a
    heap of that many) instead of sorting every matching chunk, which for three common
    words on 100,000 chunks was 30 of 95 ms (72,000 chunks). The caller runs it again
    without the bound when fewer than ``limit`` of those were allowed.
    ``postings``: the postings with what ``score`` reads beside them (the terms' weights).
    """
    scored = (
        select(Bm25Posting.chunk_id, score.label("score"))
        .select_from(postings)
        .where(matching)
        .group_by(Bm25Posting.chunk_id)
        .order_by(score.desc(), Bm25Posting.chunk_id)
        .limit(bindparam("scored_first", type_=Integer))
        .offset(0)
        .subquery("scored")
    )
    return _readable_in_order(scored, allowed, limit)


def _merged_scores(slots: int, k1: float, b: float) -> FromClause:
    """Chunks with their BM25 scores over ``slots`` terms (parameters ``t0``.. and
    ``w0``.., NULL for unused slots), best first, at most ``scored_first`` of them.

    Each term's postings are read by chunk id (the primary key's order within a term) and
    merged in that order, so the scores are summed chunk after chunk as the merge goes
    (a Merge Append under a GroupAggregate): no hash table of every matching chunk, and
    each posting's weight is a constant of its branch instead of a join. CISI queries at
    100,000 chunks, the statement alone: 25-35 % faster than the join to unnest() and a
    hash aggregate, the same rows.
    """
    tf = cast(Bm25Posting.tf, Float)
    norm = literal(k1 * (1.0 - b)) + bindparam("len_weight", type_=Float) * cast(
        Bm25Posting.len, Float
    )
    branches = [
        select(
            Bm25Posting.chunk_id,
            (bindparam(f"w{i}", type_=Float) * tf * (k1 + 1.0) / (tf + norm)).label("part"),
        )
        .where(Bm25Posting.term == bindparam(f"t{i}", type_=Text))
        # Without it the planner appends the branches and sorts them all (to disk, for
        # the 175,000 postings of a CISI query at 100,000 chunks).
        .order_by(Bm25Posting.chunk_id)
        for i in range(slots)
    ]
    postings = union_all(*branches).subquery("postings")
    merged = select(postings).order_by(postings.c.chunk_id).subquery("merged")
    score = func.sum(merged.c.part)
    return (
        select(merged.c.chunk_id, score.label("score"))
        .group_by(merged.c.chunk_id)
        .order_by(score.desc(), merged.c.chunk_id)
        .limit(bindparam("scored_first", type_=Integer))
        .offset(0)
        .subquery("scored")
    )


def _readable_in_order(
    scored: FromClause, allowed: ColumnElement[bool], limit: ColumnElement[int]
) -> Select[Any]:
    """``scored`` chunks (chunk_id, score), checked in score order against the caller's
    predicate until ``limit`` pass; ties by chunk id."""
    readable = (
        select(Chunk.document_id)
        .where(Chunk.id == scored.c.chunk_id, allowed)
        .offset(0)
        .lateral("readable")
    )
    return (
        select(scored.c.chunk_id, readable.c.document_id, scored.c.score)
        .select_from(scored)
        .join(readable, true())
        .order_by(scored.c.score.desc(), scored.c.chunk_id)
        .limit(limit)
    )


async def satisfies_syntax(
    session: AsyncSession, access: AccessFilter, chunk_ids: list[int], query: ParsedQuery
) -> set[int]:
    """Which of ``chunk_ids`` the caller may read that hold every quoted phrase and none of
    the excluded words (scoped, so it cannot answer "does chunk N contain X" for others)."""
    stmt = select(Chunk.id).where(
        Chunk.id.in_(chunk_ids),
        access.where(AuthzColumns.of_chunks(Chunk)),
        *_syntax_conditions(query),
    )
    return set((await session.execute(stmt)).scalars())


__all__ = [
    "Bm25Params",
    "QueryWeights",
    "bm25_candidates",
    "first_pass_rows",
    "query_weights",
    "satisfies_syntax",
]
