"""All SQL of search and document reads.

Every query that returns or counts chunks or documents takes the caller's
:class:`~policies.access.AccessFilter` and puts its predicate inside the query, before any
LIMIT, next to the caller's own filters; every row that comes back is re-checked with
``access.permits`` and dropped if denied. Nothing here is reachable without a filter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Executable,
    Integer,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY
from sqlalchemy.ext.asyncio import AsyncSession

from policies.access import AccessFilter, AuthzColumns, RowAttributes
from server.db.models import Chunk, Document, Source
from server.search.schemas import MetadataValue, SearchFilters
from server.search.statement_memo import StatementMemo
from server.search.timing import phase

# Candidates are re-sorted in Python: relaxed_order may return them slightly out of order.
_ITERATIVE_SCAN = "relaxed_order"


@dataclass(frozen=True)
class Candidate:
    """One chunk a search branch found, with its branch score (distance or rank)."""

    chunk_id: int
    document_id: uuid.UUID
    score: float


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: int
    document_id: uuid.UUID
    ordinal: int
    heading: str
    text: str
    title: str
    uri: str
    source: str
    collection: str
    content_type: str
    modified_at: datetime | None


@dataclass(frozen=True)
class DocumentRow:
    document_id: uuid.UUID
    title: str
    uri: str
    source: str
    collection: str
    content_type: str
    modified_at: datetime | None
    metadata: dict[str, Any]
    content: str


def _metadata_text(value: MetadataValue) -> str:
    # Compare as the text ->> yields, so 2024 and "2024" both match a stored 2024.
    return value if isinstance(value, str) else json.dumps(value)


def _filter_predicate(
    columns: AuthzColumns, modified_at: Any, f: SearchFilters
) -> ColumnElement[bool]:
    """The caller's own narrowing, as bound parameters only."""
    parts: list[ColumnElement[bool]] = []
    if f.sources:
        parts.append(columns.source.in_(list(f.sources)))
    if f.collections:
        parts.append(
            or_(
                *(
                    or_(
                        columns.collection == c,
                        columns.collection.startswith(c + "/", autoescape=True),
                    )
                    for c in f.collections
                )
            )
        )
    if f.content_types:
        parts.append(columns.content_type.in_(list(f.content_types)))
    if f.modified_after is not None:
        parts.append(modified_at >= f.modified_after)
    if f.modified_before is not None:
        parts.append(modified_at < f.modified_before)
    for key, value in f.metadata.items():
        parts.append(columns.metadata[key].astext == _metadata_text(value))
    return and_(true(), *parts)


def _live_chunk() -> ColumnElement[bool]:
    # Chunks of a soft-deleted document must never surface, even before the pipeline purges them.
    return ~exists().where(Document.id == Chunk.document_id, Document.deleted_at.is_not(None))


def chunk_predicate(access: AccessFilter) -> ColumnElement[bool]:
    """The caller's predicate over the chunk table (the same object on every call for one
    caller, see :mod:`server.search.statement_memo`)."""
    return access.where(AuthzColumns.of_chunks(Chunk))


def chunk_scope_for(predicate: ColumnElement[bool], filters: SearchFilters) -> ColumnElement[bool]:
    """The chunks a caller may search: their predicate, their filters, live documents."""
    columns = AuthzColumns.of_chunks(Chunk)
    return and_(predicate, _filter_predicate(columns, Chunk.modified_at, filters), _live_chunk())


def _chunk_scope(access: AccessFilter, filters: SearchFilters) -> ColumnElement[bool]:
    return chunk_scope_for(chunk_predicate(access), filters)


# Statements around a caller's predicate, built once per predicate and shape.
STATEMENTS = StatementMemo()


def _document_scope(access: AccessFilter) -> ColumnElement[bool]:
    return and_(Document.deleted_at.is_(None), access.where(AuthzColumns.of_documents(Document)))


_TUNED = "kb_vector_scan_tuning"


@dataclass(frozen=True)
class ScanTuning:
    """How HNSW walks: iterative scans in relaxed order, ``ef_search`` candidates per step,
    at most ``max_scan_tuples`` tuples per walk."""

    ef_search: int
    max_scan_tuples: int
    iterative_scan: str = _ITERATIVE_SCAN  # or "strict_order"

    def settings(self) -> dict[str, str]:
        return {
            "hnsw.iterative_scan": self.iterative_scan,
            "hnsw.ef_search": str(self.ef_search),
            "hnsw.max_scan_tuples": str(self.max_scan_tuples),
        }


@dataclass(frozen=True)
class PendingTuning:
    """Settings sent on a connection inside a transaction not yet committed."""

    info: dict[str, object]
    tuning: ScanTuning


async def tune_vector_scan(session: AsyncSession, tuning: ScanTuning) -> PendingTuning | None:
    """Make sure this connection walks HNSW with ``tuning``; at most one round trip.

    The settings are the same for every caller (nothing in them depends on who asks), so
    they are set once per pooled connection, at session level, and remembered in the
    connection's ``info``; only HNSW index scans read them. Set inside the caller's
    transaction, they would vanish if it rolled back, so the caller marks the connection
    (``info[_TUNED] = tuning``, via :func:`mark_tuned`) only after its commit.
    """
    conn = await session.connection()
    info: dict[str, object] = conn.info
    if info.get(_TUNED) == tuning:
        return None
    await session.execute(
        select(*(func.set_config(k, v, False) for k, v in tuning.settings().items()))
    )
    return PendingTuning(info, tuning)


def mark_tuned(pending: PendingTuning | None) -> None:
    """After the transaction that ran :func:`tune_vector_scan` committed."""
    if pending is not None:
        pending.info[_TUNED] = pending.tuning


@asynccontextmanager
async def custom_plans(session: AsyncSession) -> AsyncIterator[None]:
    """Statements run inside are never prepared, so each is planned with its real values.

    psycopg prepares a statement after a few executions, and Postgres may then switch to
    a generic plan, which cannot see how selective this caller's predicate is (it would
    send a 0.1 % caller through HNSW, or a 50 % one through an exact scan). An unprepared
    statement is planned with its parameters every time. Statements whose plan does not
    depend on the caller (by id, the audit insert) stay prepared.
    """
    conn = await session.connection()
    raw: Any = (await conn.get_raw_connection()).driver_connection
    if raw is None or not hasattr(raw, "prepare_threshold"):
        yield
        return
    before = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = before


async def plain_rows(
    session: AsyncSession, stmt: Executable, params: dict[str, Any] | None = None
) -> Sequence[Row[Any]]:
    """The rows of a statement that selects plain columns, run by SQLAlchemy Core on the
    session's connection (same transaction).

    ``session.execute`` adds the ORM's execution layer (compile state, loader options,
    ORM result set-up): about a third of SQLAlchemy's time per statement in a search,
    for rows that hold no entities anyway.
    """
    conn = await session.connection()
    return (await conn.execute(stmt, params)).all()


async def estimated_chunks(session: AsyncSession) -> float | None:
    """The planner's row estimate of the chunk table (None before it was ever analysed)."""
    found = await session.execute(
        sql_text("SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass")
    )
    value = found.scalar_one_or_none()
    return float(value) if value is not None and value >= 0 else None


async def count_allowed_chunks(
    session: AsyncSession, access: AccessFilter, filters: SearchFilters, cap: int
) -> int:
    """How many chunks the caller may search, counted up to ``cap`` (cheap when large)."""
    inner = select(literal(1)).where(_chunk_scope(access, filters)).limit(cap).subquery()
    async with custom_plans(session):
        result = await session.execute(select(func.count()).select_from(inner))
    return int(result.scalar_one())


async def vector_candidates(
    session: AsyncSession,
    access: AccessFilter,
    filters: SearchFilters,
    embedding: Sequence[float],
    limit: int,
    *,
    exact: bool = False,
) -> list[Candidate]:
    """Nearest chunks among the allowed ones, in one statement (planned with its values).

    The connection must walk HNSW as :func:`tune_vector_scan` sets. ``exact`` orders by an
    expression the HNSW index cannot serve, so the scan covers every allowed row: used
    when the allowed set is small enough that this is cheap and exact.
    """
    stmt = _vector_statement(access, filters, exact)
    with phase("vector: query" if not exact else "vector: query (exact)"):
        async with custom_plans(session):
            rows = await plain_rows(session, stmt, {"embedding": list(embedding), "limit": limit})
    ordered = sorted(rows, key=lambda r: (r.distance, r.id))
    return [Candidate(r.id, r.document_id, float(r.distance)) for r in ordered]


def _vector_statement(access: AccessFilter, filters: SearchFilters, exact: bool) -> Executable:
    predicate = chunk_predicate(access)

    def build() -> Executable:
        embedding = bindparam("embedding", type_=Chunk.embedding.type)
        distance = Chunk.embedding.cosine_distance(embedding)
        order = distance + 0.0 if exact else distance
        return (
            select(Chunk.id, Chunk.document_id, distance.label("distance"))
            .where(chunk_scope_for(predicate, filters))
            .order_by(order)
            .limit(bindparam("limit", type_=Integer))
        )

    return STATEMENTS.get(predicate, ("vector", exact, repr(filters)), build)


KeywordMatch = Literal["all", "any"]


def keyword_query(text: str, match: KeywordMatch) -> ColumnElement[Any]:
    """The tsquery for ``text``.

    ``all``: web-search syntax (every word, "quoted phrases", -excluded, OR), as typed.
    ``any``: any of the words; chunks with more of them (closer together) still rank first.
    Built from plainto_tsquery's canonical text, whose lexemes are already quoted, so the
    swap of AND for OR cannot change how any lexeme parses.
    """
    if match == "all":
        return func.websearch_to_tsquery("english", text)
    as_and = func.cast(func.plainto_tsquery("english", text), Text)
    return func.cast(func.replace(as_and, " & ", " | "), TSQUERY)


async def keyword_candidates(
    session: AsyncSession,
    access: AccessFilter,
    filters: SearchFilters,
    text: str,
    limit: int,
    match: KeywordMatch = "all",
) -> list[Candidate]:
    """Chunks matching the words of ``text``, best cover density first."""
    query = keyword_query(text, match)
    rank = func.ts_rank_cd(Chunk.tsv, query)
    stmt = (
        select(Chunk.id, Chunk.document_id, rank.label("rank"))
        .where(Chunk.tsv.bool_op("@@")(query), _chunk_scope(access, filters))
        .order_by(rank.desc(), Chunk.id)
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    return [Candidate(r.id, r.document_id, float(r.rank)) for r in rows]


# What a hit shows and what its re-check reads: never the embedding or the tsvector.
_HIT_COLUMNS = (
    Chunk.id,
    Chunk.document_id,
    Chunk.ordinal,
    Chunk.heading,
    Chunk.text,
    Chunk.source,
    Chunk.collection,
    Chunk.path,
    Chunk.level,
    Chunk.acl,
    Chunk.content_type,
    Chunk.doc_metadata,
    Chunk.modified_at,
    Document.title,
    Document.uri,
    Document.modified_at.label("doc_modified_at"),
)


async def load_chunks(
    session: AsyncSession,
    access: AccessFilter,
    chunk_ids: Sequence[int],
    *,
    keep: int | None = None,
) -> dict[int, ChunkRow]:
    """Chunks by id with their document's title and URI, re-checked; denied ids are absent.

    One statement, selecting only the columns a hit shows and its re-check reads (never the
    embedding or the tsvector), as plain rows (no ORM identity map). With ``keep``, rows
    are re-checked in the order of ``chunk_ids`` until ``keep`` are allowed, and only those
    are returned: the spare rows a search loads in case one is denied cost no re-check
    (the per-row enforcer is the most expensive part of hydration).
    """
    if not chunk_ids:
        return {}
    predicate = chunk_predicate(access)
    stmt = STATEMENTS.get(
        predicate,
        "load chunks",
        lambda: (
            select(*_HIT_COLUMNS)
            .join(Document, Document.id == Chunk.document_id)
            .where(
                Chunk.id == func.any(bindparam("ids", type_=ARRAY(BigInteger))),
                Document.deleted_at.is_(None),
                predicate,
            )
        ),
    )
    found: dict[int, ChunkRow] = {}
    rows = await plain_rows(session, stmt, {"ids": list(chunk_ids)})
    if keep is not None:
        rank = {chunk_id: i for i, chunk_id in enumerate(chunk_ids)}
        rows = sorted(rows, key=lambda r: rank[r.id])
    for row in rows:
        if keep is not None and len(found) >= keep:
            break
        if not access.permits(RowAttributes.of_chunk(row)):
            continue
        found[row.id] = ChunkRow(
            chunk_id=row.id,
            document_id=row.document_id,
            ordinal=row.ordinal,
            heading=row.heading,
            text=row.text,
            title=row.title,
            uri=row.uri,
            source=row.source,
            collection=row.collection,
            content_type=row.content_type,
            modified_at=row.doc_modified_at or row.modified_at,
        )
    return found


async def neighbour_chunk_ids(
    session: AsyncSession, access: AccessFilter, chunk_id: int, neighbours: int
) -> list[int]:
    """Ids of the chunk and up to ``neighbours`` on each side, in document order."""
    anchor = (
        select(Chunk.document_id, Chunk.ordinal)
        .where(Chunk.id == chunk_id, access.where(AuthzColumns.of_chunks(Chunk)))
        .subquery()
    )
    stmt = (
        select(Chunk.id)
        .join(anchor, anchor.c.document_id == Chunk.document_id)
        .where(
            Chunk.ordinal.between(anchor.c.ordinal - neighbours, anchor.c.ordinal + neighbours),
            access.where(AuthzColumns.of_chunks(Chunk)),
        )
        .order_by(Chunk.ordinal)
    )
    return list((await session.execute(stmt)).scalars())


# Listings never load the full text; only a fetch of one document does.
_SUMMARY_COLUMNS = (
    Document.id,
    Document.title,
    Document.uri,
    Document.source,
    Document.collection,
    Document.path,
    Document.level,
    Document.acl,
    Document.content_type,
    Document.modified_at,
    Document.metadata_,
)


def _document_row(row: Any, content: str = "") -> DocumentRow:
    return DocumentRow(
        document_id=row.id,
        title=row.title,
        uri=row.uri,
        source=row.source,
        collection=row.collection,
        content_type=row.content_type,
        modified_at=row.modified_at,
        metadata=dict(row.metadata_),
        content=content,
    )


async def get_document(
    session: AsyncSession, access: AccessFilter, document_id: uuid.UUID
) -> DocumentRow | None:
    """A live document the caller may read, or None (absent and denied look the same)."""
    stmt = select(*_SUMMARY_COLUMNS, Document.content).where(
        Document.id == document_id, _document_scope(access)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None or not access.permits(RowAttributes.of_document(row)):
        return None
    return _document_row(row, row.content)


async def document_text_from_chunks(
    session: AsyncSession, access: AccessFilter, document_id: uuid.UUID
) -> str:
    """The text of a document whose full content was not stored, rebuilt from its chunks.

    Every chunk is re-checked like any other row; if one is denied the whole text is (a
    document is read whole or not at all), so the caller gets "".
    """
    stmt = (
        select(Chunk)
        .where(Chunk.document_id == document_id, access.where(AuthzColumns.of_chunks(Chunk)))
        .order_by(Chunk.ordinal)
    )
    chunks = (await session.execute(stmt)).scalars().all()
    if not all(access.permits(RowAttributes.of_chunk(c)) for c in chunks):
        return ""
    return "\n\n".join(c.text for c in chunks)


def _documents_page(
    access: AccessFilter, after: tuple[str, uuid.UUID] | None, limit: int, source: str | None
) -> Select[Any]:
    stmt = select(*_SUMMARY_COLUMNS).where(_document_scope(access))
    if source is not None:
        stmt = stmt.where(Document.source == source)
    if after is not None:
        stmt = stmt.where(
            tuple_(Document.title, Document.id) > tuple_(literal(after[0]), literal(after[1]))
        )
    return stmt.order_by(Document.title, Document.id).limit(limit)


async def list_documents(
    session: AsyncSession,
    access: AccessFilter,
    *,
    after: tuple[str, uuid.UUID] | None,
    limit: int,
    source: str | None = None,
) -> tuple[list[DocumentRow], tuple[str, uuid.UUID] | None]:
    """One page by (title, id) and the key of the last row read (the next page's start).

    The key advances past denied rows too, so a page never repeats; the key reveals nothing
    because the cursor only ever moves forward over rows the predicate already allowed.
    """
    rows = (await session.execute(_documents_page(access, after, limit, source))).all()
    last = (rows[-1].title, rows[-1].id) if len(rows) == limit else None
    return [_document_row(d) for d in rows if access.permits(RowAttributes.of_document(d))], last


def counts_statement(access: AccessFilter) -> Select[str, str, int]:
    """Live documents per (source, collection) under the caller's predicate. Grouped in
    the order of ``ix_documents_live_source_collection``: for a predicate that allows every
    live document, an index-only scan with no sort (migration 0009)."""
    return (
        select(Document.source, Document.collection, func.count())
        .where(_document_scope(access))
        .group_by(Document.source, Document.collection)
    )


async def count_rechecked_documents(
    session: AsyncSession, access: AccessFilter
) -> dict[tuple[str, str], int]:
    """Documents per (source, collection) that the caller may read, for a filter that is
    not exact: every row its SQL predicate allows is streamed through the re-check, so a
    predicate that is not exact can never inflate a count. (An exact filter is counted by
    one GROUP BY, :func:`counts_statement`.)"""
    counts: dict[tuple[str, str], int] = {}
    stmt = (
        select(*_SUMMARY_COLUMNS).where(_document_scope(access)).execution_options(yield_per=2000)
    )
    async for row in await session.stream(stmt):
        if access.permits(RowAttributes.of_document(row)):
            key = (row.source, row.collection)
            counts[key] = counts.get(key, 0) + 1
    return counts


async def describe_sources(
    session: AsyncSession, names: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """Kind and description of each named source."""
    if not names:
        return {}
    stmt = select(Source.name, Source.kind, Source.config["description"].astext).where(
        Source.name.in_(names)
    )
    return {n: (k, d or "") for n, k, d in (await session.execute(stmt)).all()}


async def complete_documents(
    session: AsyncSession, access: AccessFilter, prefix: str, limit: int
) -> list[DocumentRow]:
    """Documents whose title or id starts with ``prefix`` (case-insensitive titles)."""
    match = (
        or_(
            Document.title.istartswith(prefix, autoescape=True),
            func.cast(Document.id, Document.title.type).startswith(prefix.lower(), autoescape=True),
        )
        if prefix
        else true()
    )
    stmt = (
        select(*_SUMMARY_COLUMNS)
        .where(_document_scope(access), match)
        .order_by(Document.title, Document.id)
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    return [_document_row(r) for r in rows if access.permits(RowAttributes.of_document(r))]


__all__ = [
    "Candidate",
    "ChunkRow",
    "DocumentRow",
    "KeywordMatch",
    "PendingTuning",
    "ScanTuning",
    "complete_documents",
    "count_allowed_chunks",
    "count_rechecked_documents",
    "counts_statement",
    "custom_plans",
    "describe_sources",
    "document_text_from_chunks",
    "get_document",
    "keyword_candidates",
    "keyword_query",
    "list_documents",
    "load_chunks",
    "mark_tuned",
    "neighbour_chunk_ids",
    "tune_vector_scan",
    "vector_candidates",
]
