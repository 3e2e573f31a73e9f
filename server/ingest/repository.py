"""All SQL that writes sources, documents, chunks and ingest runs.

Functions take a sync SQLAlchemy ``Connection`` and never commit: the caller owns the
transaction, which is how a document's replacement (row update, old chunks out, new chunks
in), the run counters and the source cursor land together or not at all.

These are operator-side statements (the ingestion pipeline, ``kb sources``/``kb jobs`` and
the admin API behind the admin role); none of them returns chunk or document content to a
caller, so none takes an access filter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from policies.store import CHANNEL as POLICY_CHANNEL
from server.db.models import Chunk, Document, IngestFailure, IngestRun, Source
from server.embeddings.base import Vectors
from server.ingest.chunking import ChunkText

# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceRow:
    name: str
    kind: str
    config: dict[str, Any]
    origin: str
    enabled: bool
    sync_state: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_success_at: datetime | None


def upsert_source(
    conn: Connection, *, name: str, kind: str, config: Mapping[str, Any], origin: str, enabled: bool
) -> None:
    """Create the source or refresh its configuration; its cursor is kept.

    Switching ``enabled`` notifies the policy listeners (at commit), so every process takes
    the source off (or back) at once instead of at its next poll.
    """
    was = conn.execute(select(Source.enabled).where(Source.name == name)).scalar_one_or_none()
    stmt = pg_insert(Source).values(
        name=name, kind=kind, config=dict(config), origin=origin, enabled=enabled
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Source.name],
        set_={
            "kind": stmt.excluded.kind,
            "config": stmt.excluded.config,
            "origin": stmt.excluded.origin,
            "enabled": stmt.excluded.enabled,
            "updated_at": func.now(),
        },
    )
    conn.execute(stmt)
    if was != enabled and not (was is None and enabled):
        conn.execute(select(func.pg_notify(POLICY_CHANNEL, "sources")))


def get_source(conn: Connection, name: str, *, for_update: bool = False) -> SourceRow | None:
    stmt = select(Source).where(Source.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    return _source_row(row) if row else None


def list_sources(conn: Connection) -> list[SourceRow]:
    rows = conn.execute(select(Source).order_by(Source.name)).mappings().all()
    return [_source_row(r) for r in rows]


def _source_row(row: Any) -> SourceRow:
    return SourceRow(
        **{k: row[k] for k in SourceRow.__dataclass_fields__}  # same names as the columns
    )


def delete_source(conn: Connection, name: str) -> bool:
    """Remove a source; its documents and chunks go with it (ON DELETE CASCADE)."""
    return bool(conn.execute(delete(Source).where(Source.name == name)).rowcount)


def save_sync_state(
    conn: Connection, name: str, state: Mapping[str, Any], *, success: bool
) -> None:
    values: dict[str, Any] = {"sync_state": dict(state), "updated_at": func.now()}
    if success:
        values["last_success_at"] = func.now()
    conn.execute(update(Source).where(Source.name == name).values(**values))


# How long the documents change log (migration 0011) keeps rows: past the 300 s for which
# a cached list_sources count lives (server/search/source_counts.py), with margin. A count
# older than what is kept is counted afresh, never wrongly.
CHANGE_LOG_KEEP_S = 900


def prune_document_changes(conn: Connection, keep_s: float = CHANGE_LOG_KEEP_S) -> int:
    """Drop change-log rows no cached count can need any more; how many went."""
    gone = conn.execute(
        select(func.kb_prune_document_changes(func.make_interval(0, 0, 0, 0, 0, 0, keep_s)))
    ).scalar_one()
    return int(gone)


def live_document_counts(conn: Connection) -> dict[str, int]:
    """Documents per source that are not deleted (operator statistics)."""
    rows = conn.execute(
        select(Document.source, func.count())
        .where(Document.deleted_at.is_(None))
        .group_by(Document.source)
    ).all()
    return {str(source): int(n) for source, n in rows}


# ---------------------------------------------------------------- documents and chunks


@dataclass(frozen=True)
class StoredDocument:
    id: uuid.UUID
    content_hash: str
    live: bool
    text_hash: str | None = None  # None: stored before migration 0006
    base_metadata: Mapping[str, Any] | None = None


def document_index(conn: Connection, source: str) -> dict[str, StoredDocument]:
    """external id -> (id, hashes, live, base metadata) for every document ever stored."""
    rows = conn.execute(
        select(
            Document.external_id,
            Document.id,
            Document.content_hash,
            Document.deleted_at,
            Document.text_hash,
            Document.base_metadata,
        ).where(Document.source == source)
    ).all()
    return {
        ext: StoredDocument(doc_id, h, deleted is None, text_hash, base)
        for ext, doc_id, h, deleted, text_hash, base in rows
    }


@dataclass(frozen=True)
class DocumentWrite:
    """A document's new state and its chunks, ready to replace whatever is stored."""

    source: str
    external_id: str
    uri: str
    title: str
    content_type: str
    content_hash: str
    content: str
    metadata: Mapping[str, Any]
    collection: str
    path: str
    level: int
    acl: tuple[str, ...]
    size_bytes: int
    modified_at: datetime | None
    chunks: Sequence[ChunkText]
    text_hash: str | None = None
    base_metadata: Mapping[str, Any] | None = None


_CHUNK_COLUMNS = (
    "document_id",
    "ordinal",
    "heading",
    "text",
    "token_count",
    "embedding",
    "source",
    "collection",
    "path",
    "level",
    "acl",
    "content_type",
    "doc_metadata",
    "modified_at",
)
_COPY_CHUNKS = f"COPY chunks ({', '.join(_CHUNK_COLUMNS)}) FROM STDIN"


def replace_documents(conn: Connection, docs: Sequence[DocumentWrite], vectors: Vectors) -> int:
    """Upsert ``docs``, drop their old chunks and insert the new ones; returns chunks written.

    ``vectors`` holds one row per chunk, in document order then chunk order. Runs inside the
    caller's transaction, so readers see either the old document or the new one.
    """
    if not docs:
        return 0
    rows = [
        {
            "source": d.source,
            "external_id": d.external_id,
            "uri": d.uri,
            "title": d.title,
            "content_type": d.content_type,
            "content_hash": d.content_hash,
            "content": d.content,
            "metadata_": dict(d.metadata),
            "collection": d.collection,
            "path": d.path,
            "level": d.level,
            "acl": list(d.acl),
            "size_bytes": d.size_bytes,
            "modified_at": d.modified_at,
            "deleted_at": None,
            "text_hash": d.text_hash,
            "base_metadata": dict(d.base_metadata) if d.base_metadata is not None else None,
        }
        for d in docs
    ]
    base = pg_insert(Document).values(rows)
    excluded = base.excluded
    stmt = base.on_conflict_do_update(
        index_elements=[Document.source, Document.external_id],
        set_={
            **{
                col: getattr(excluded, col)
                for col in (
                    "uri",
                    "title",
                    "content_type",
                    "content_hash",
                    "content",
                    "collection",
                    "path",
                    "level",
                    "acl",
                    "size_bytes",
                    "modified_at",
                    "text_hash",
                    "base_metadata",
                )
            },
            "metadata": excluded.metadata,
            "deleted_at": None,
            "updated_at": func.now(),
        },
    ).returning(Document.external_id, Document.id)
    ids = {ext: doc_id for ext, doc_id in conn.execute(stmt).all()}
    conn.execute(delete(Chunk).where(Chunk.document_id.in_(list(ids.values()))))
    return _copy_chunks(conn, docs, ids, vectors)


def _copy_chunks(
    conn: Connection,
    docs: Sequence[DocumentWrite],
    ids: Mapping[str, uuid.UUID],
    vectors: Vectors,
) -> int:
    total = sum(len(d.chunks) for d in docs)
    if vectors.shape[0] != total:
        raise ValueError(f"{vectors.shape[0]} vectors for {total} chunks")
    if not total:
        return 0
    raw: Any = conn.connection.driver_connection
    i = 0
    with raw.cursor() as cur, cur.copy(_COPY_CHUNKS) as copy:
        for d in docs:
            meta = json.dumps(dict(d.metadata), default=str)
            acl = list(d.acl)
            for chunk in d.chunks:
                copy.write_row(
                    (
                        ids[d.external_id],
                        chunk.ordinal,
                        chunk.heading,
                        chunk.text,
                        chunk.token_count,
                        _vector_literal(vectors[i]),
                        d.source,
                        d.collection,
                        d.path,
                        d.level,
                        acl,
                        d.content_type,
                        meta,
                        d.modified_at,
                    )
                )
                i += 1
    return total


def _vector_literal(vector: np.ndarray[Any, Any]) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in vector.tolist()) + "]"


def mark_deleted(conn: Connection, source: str, external_ids: Iterable[str]) -> int:
    """Soft-delete documents and hard-delete their chunks, so they leave search at once."""
    wanted = list(external_ids)
    if not wanted:
        return 0
    doc_ids = (
        conn.execute(
            update(Document)
            .where(
                and_(
                    Document.source == source,
                    Document.external_id.in_(wanted),
                    Document.deleted_at.is_(None),
                )
            )
            .values(deleted_at=func.now(), updated_at=func.now())
            .returning(Document.id)
        )
        .scalars()
        .all()
    )
    if doc_ids:
        conn.execute(delete(Chunk).where(Chunk.document_id.in_(doc_ids)))
    return len(doc_ids)


# Stored as the hash of a document whose placement was applied without new text: equal to
# no real content hash, so the next successful parse always rewrites the document.
STALE_HASH = "stale:placement-applied"


def apply_placement(
    conn: Connection,
    source: str,
    external_id: str,
    *,
    collection: str,
    path: str,
    level: int,
    acl: Sequence[str],
) -> bool:
    """Give a stored document (and its chunks) a new placement and ACL without new text.

    For a document whose new version failed to parse: the source's current authorization
    applies to what is served. The stored hash is marked so the next successful parse
    rewrites the document even if its content and placement return to the old ones."""
    doc_id = conn.execute(
        update(Document)
        .where(
            and_(
                Document.source == source,
                Document.external_id == external_id,
                Document.deleted_at.is_(None),
            )
        )
        .values(
            collection=collection,
            path=path,
            level=level,
            acl=list(acl),
            content_hash=STALE_HASH,
            updated_at=func.now(),
        )
        .returning(Document.id)
    ).scalar_one_or_none()
    if doc_id is None:
        return False
    conn.execute(
        update(Chunk)
        .where(Chunk.document_id == doc_id)
        .values(collection=collection, path=path, level=level, acl=list(acl))
    )
    return True


@dataclass(frozen=True)
class Reauthorization:
    """A stored document's new authorization and place, its text (and chunks) unchanged."""

    external_id: str
    uri: str
    collection: str
    path: str
    level: int
    acl: tuple[str, ...]
    metadata: Mapping[str, Any]
    content_hash: str
    text_hash: str
    size_bytes: int
    base_metadata: Mapping[str, Any] | None = None
    # Set only when the source gave a modification time with the change (SQL rows).
    modified_at: datetime | None = None
    set_modified_at: bool = False
    moved_from: str | None = None  # the external id it was stored under (a folder move)


_REAUTHORIZE_DOCUMENTS = text(
    """
    WITH v AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
            stored_as text, external_id text, uri text, collection text, path text,
            level smallint, acl text[], metadata jsonb, content_hash text, text_hash text,
            size_bytes bigint, base_metadata jsonb, modified_at timestamptz,
            set_modified boolean)
    )
    UPDATE documents d SET
        external_id = v.external_id, uri = v.uri, collection = v.collection, path = v.path,
        level = v.level, acl = v.acl, metadata = v.metadata, content_hash = v.content_hash,
        text_hash = v.text_hash, size_bytes = v.size_bytes,
        base_metadata = coalesce(v.base_metadata, d.base_metadata),
        modified_at = CASE WHEN v.set_modified THEN v.modified_at ELSE d.modified_at END,
        updated_at = now()
    FROM v
    WHERE d.source = :source AND d.external_id = v.stored_as AND d.deleted_at IS NULL
    RETURNING d.id
    """
)
# Chunks copy the (just updated) columns of their document: the same values, one statement.
_REAUTHORIZE_CHUNKS = text(
    """
    UPDATE chunks c SET
        collection = d.collection, path = d.path, level = d.level, acl = d.acl,
        doc_metadata = d.metadata, modified_at = d.modified_at
    FROM documents d
    WHERE d.id = ANY(:ids) AND c.document_id = d.id
    """
)


def reauthorize_documents(conn: Connection, source: str, items: Sequence[Reauthorization]) -> int:
    """Apply new authorization columns to documents and, in the same transaction, to every
    one of their chunks, which keep their ids, text, vectors and BM25 postings (the update
    trigger re-indexes only changed text). Two statements for the whole batch, whatever its
    size. Returns the documents updated."""
    if not items:
        return 0
    moved = [i.external_id for i in items if i.moved_from is not None]
    if moved:
        # Whatever was stored at a moved document's new address (deleted, or withdrawn)
        # gives way; its chunks go with it (ON DELETE CASCADE).
        conn.execute(
            delete(Document).where(and_(Document.source == source, Document.external_id.in_(moved)))
        )
    rows = [
        {
            "stored_as": i.moved_from or i.external_id,
            "external_id": i.external_id,
            "uri": i.uri,
            "collection": i.collection,
            "path": i.path,
            "level": i.level,
            "acl": list(i.acl),
            "metadata": dict(i.metadata),
            "content_hash": i.content_hash,
            "text_hash": i.text_hash,
            "size_bytes": i.size_bytes,
            "base_metadata": dict(i.base_metadata) if i.base_metadata is not None else None,
            "modified_at": i.modified_at.isoformat() if i.modified_at is not None else None,
            "set_modified": i.set_modified_at,
        }
        for i in items
    ]
    ids = list(
        conn.execute(
            _REAUTHORIZE_DOCUMENTS,
            {"rows": json.dumps(rows, default=str), "source": source},
        ).scalars()
    )
    if ids:
        conn.execute(_REAUTHORIZE_CHUNKS, {"ids": ids})
    return len(ids)


@dataclass(frozen=True)
class HashBackfill:
    """An unchanged document's hashes as this version computes them (rows stored before
    migration 0006 have no text hash; a placement-applied hash becomes the real one)."""

    external_id: str
    content_hash: str
    text_hash: str
    base_metadata: Mapping[str, Any] | None


def backfill_hashes(conn: Connection, source: str, items: Sequence[HashBackfill]) -> None:
    for item in items:
        values: dict[str, Any] = {"content_hash": item.content_hash, "text_hash": item.text_hash}
        if item.base_metadata is not None:
            values["base_metadata"] = dict(item.base_metadata)
        conn.execute(
            update(Document)
            .where(and_(Document.source == source, Document.external_id == item.external_id))
            .values(**values)
        )


# ---------------------------------------------------------------- ingest runs


def create_run(conn: Connection, source: str, *, trigger: str, status: str = "queued") -> int:
    values: dict[str, Any] = {"source": source, "trigger": trigger, "status": status}
    if status == "running":
        values.update(started_at=func.now(), heartbeat_at=func.now())
    return int(
        conn.execute(insert(IngestRun).values(**values).returning(IngestRun.id)).scalar_one()
    )


def delete_run(conn: Connection, run_id: int) -> None:
    conn.execute(delete(IngestRun).where(IngestRun.id == run_id))


def update_run(conn: Connection, run_id: int, **values: Any) -> None:
    conn.execute(update(IngestRun).where(IngestRun.id == run_id).values(**values))


def add_run_counts(conn: Connection, run_id: int, counts: Mapping[str, int]) -> None:
    """Add deltas to the counters and touch the heartbeat."""
    values: dict[str, Any] = {
        name: getattr(IngestRun, name) + delta for name, delta in counts.items() if delta
    }
    values["heartbeat_at"] = func.now()
    conn.execute(update(IngestRun).where(IngestRun.id == run_id).values(**values))


def add_failures(conn: Connection, run_id: int, failures: Sequence[tuple[str, str, str]]) -> None:
    """(external_id, uri, reason) per failed document."""
    if failures:
        conn.execute(
            insert(IngestFailure),
            [{"run_id": run_id, "external_id": e, "uri": u, "reason": r} for e, u, r in failures],
        )


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(IngestRun).where(IngestRun.id == run_id)).mappings().first()
    return dict(row) if row else None


def list_runs(
    conn: Connection, *, source: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    stmt = select(IngestRun).order_by(IngestRun.id.desc()).limit(limit)
    if source is not None:
        stmt = stmt.where(IngestRun.source == source)
    return [dict(r) for r in conn.execute(stmt).mappings().all()]


def latest_runs(conn: Connection) -> dict[str, dict[str, Any]]:
    """The newest run of every source."""
    newest = select(func.max(IngestRun.id)).group_by(IngestRun.source).scalar_subquery()
    rows = conn.execute(select(IngestRun).where(IngestRun.id.in_(newest))).mappings().all()
    return {str(r["source"]): dict(r) for r in rows}


def run_failures(conn: Connection, run_id: int, *, limit: int = 1000) -> list[dict[str, Any]]:
    stmt = (
        select(IngestFailure.external_id, IngestFailure.uri, IngestFailure.reason, IngestFailure.at)
        .where(IngestFailure.run_id == run_id)
        .order_by(IngestFailure.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings().all()]


def running_runs(conn: Connection, source: str, *, trigger: str, not_worker: str) -> list[int]:
    stmt = select(IngestRun.id).where(
        and_(
            IngestRun.source == source,
            IngestRun.status == "running",
            IngestRun.trigger == trigger,
            IngestRun.worker.is_distinct_from(not_worker),
        )
    )
    return [int(i) for i in conn.execute(stmt).scalars().all()]


def runs_of_jobs(conn: Connection, job_ids: Sequence[int], statuses: Sequence[str]) -> list[int]:
    if not job_ids:
        return []
    stmt = select(IngestRun.id).where(
        and_(IngestRun.job_id.in_(list(job_ids)), IngestRun.status.in_(list(statuses)))
    )
    return [int(i) for i in conn.execute(stmt).scalars().all()]


__all__ = [
    "DocumentWrite",
    "HashBackfill",
    "Reauthorization",
    "SourceRow",
    "StoredDocument",
    "add_failures",
    "add_run_counts",
    "apply_placement",
    "backfill_hashes",
    "create_run",
    "delete_run",
    "delete_source",
    "document_index",
    "get_run",
    "get_source",
    "latest_runs",
    "list_runs",
    "list_sources",
    "live_document_counts",
    "mark_deleted",
    "prune_document_changes",
    "reauthorize_documents",
    "replace_documents",
    "run_failures",
    "running_runs",
    "runs_of_jobs",
    "save_sync_state",
    "update_run",
    "upsert_source",
]
