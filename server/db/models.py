"""The knowledge-base schema as SQLAlchemy 2 models.

Chunks carry every column authorization needs (source, collection, path, level, ACL,
content type, document metadata) as NOT NULL copies of their document's, so the access
predicate compiled by ``policies/`` runs inside the vector and keyword index scans with
no join. Migrations under ``migrations/`` are the source of truth for the database; these
models must match them (a test autogenerates against a migrated database and expects no diff).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

EMBEDDING_DIMENSIONS = 384

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


# The authorization columns, declared once: what an access predicate (policies.compiler)
# and the per-row re-check (policies.access.RowAttributes) may read. Each chunk carries a
# NOT NULL copy of its document's, so predicates run inside the index scans with no join.
# Values: the attribute holding each column on Document and on Chunk.
AUTHZ_COLUMNS: tuple[str, ...] = (
    "document_id",
    "source",
    "collection",
    "path",
    "level",
    "acl",
    "content_type",
    "metadata",
)
DOCUMENT_AUTHZ_ATTRS: dict[str, str] = {
    **{name: name for name in AUTHZ_COLUMNS},
    "document_id": "id",
    "metadata": "metadata_",
}
CHUNK_AUTHZ_ATTRS: dict[str, str] = {
    **{name: name for name in AUTHZ_COLUMNS},
    "metadata": "doc_metadata",
}


class Source(Base):
    """A configured source. Its sync cursor lives here, committed with the rows it covers."""

    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    # Non-secret configuration; credentials stay as env-var references, never values.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    origin: Mapped[str] = mapped_column(Text, nullable=False, server_default="config")
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    sync_state: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_documents_collection", "collection"),
        Index("ix_documents_acl", "acl", postgresql_using="gin"),
        Index("ix_documents_modified_at", "modified_at"),
        # Migration 0003: the "document not soft-deleted" check of every chunk query.
        Index("ix_documents_deleted", "id", postgresql_where=text("deleted_at IS NOT NULL")),
        # Migration 0007: metadata conditions (JSONB containment) and prefix rules.
        Index(
            "ix_documents_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
        Index(
            "ix_documents_collection_prefix",
            "collection",
            postgresql_ops={"collection": "text_pattern_ops"},
        ),
        Index("ix_documents_path_prefix", "path", postgresql_ops={"path": "text_pattern_ops"}),
        # Migration 0009: list_sources' counts as an index-only scan for broad callers.
        Index(
            "ix_documents_live_source_collection",
            "source",
            "collection",
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    source: Mapped[str] = mapped_column(
        Text, ForeignKey("sources.name", ondelete="CASCADE"), nullable=False
    )
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    uri: Mapped[str] = mapped_column(Text, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    content_type: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(Text, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default="{}"
    )
    collection: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    # Empty means "ACL unknown": only admins (or an explicit policy) can read it.
    acl: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Migration 0006: the digest of what is chunked and embedded, apart from content_hash
    # (everything stored), and the metadata before placement's (see connectors.base).
    text_hash: Mapped[str | None] = mapped_column(Text)
    base_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Chunk(Base):
    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "ordinal"),
        Index(
            "ix_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
        Index("ix_chunks_acl", "acl", postgresql_using="gin"),
        # Migration 0007: a policy's metadata conditions compile to JSONB containment.
        Index(
            "ix_chunks_doc_metadata",
            "doc_metadata",
            postgresql_using="gin",
            postgresql_ops={"doc_metadata": "jsonb_path_ops"},
        ),
        Index("ix_chunks_source_collection", "source", "collection"),
        Index(
            "ix_chunks_collection_prefix",
            "collection",
            postgresql_ops={"collection": "text_pattern_ops"},
        ),
        Index("ix_chunks_path_prefix", "path", postgresql_ops={"path": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    heading: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    text: Mapped[str] = mapped_column(Text, nullable=False)
    token_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSIONS), nullable=False)
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed("to_tsvector('english'::regconfig, heading || ' ' || text)", persisted=True),
    )
    # Authorization columns: copies of the document's, kept in step by the pipeline.
    source: Mapped[str] = mapped_column(Text, nullable=False)
    collection: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    acl: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    content_type: Mapped[str] = mapped_column(Text, nullable=False)
    doc_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IngestRun(Base):
    __tablename__ = "ingest_runs"
    __table_args__ = (Index("ix_ingest_runs_source_queued", "source", "queued_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    # queued | running | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    trigger: Mapped[str] = mapped_column(Text, nullable=False, server_default="manual")
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    worker: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    docs_seen: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    docs_added: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    docs_updated: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    docs_unchanged: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    docs_deleted: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    docs_failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    chunks_written: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    bytes_read: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # Migration 0006: documents whose authorization changed without new text (no embedding).
    acl_updated: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    cursor_before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    cursor_after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class SourceFreshness(Base):
    """How fresh a source is (migration 0006): its watcher, last change seen, and lag."""

    __tablename__ = "source_freshness"

    source: Mapped[str] = mapped_column(
        Text, ForeignKey("sources.name", ondelete="CASCADE"), primary_key=True
    )
    watcher: Mapped[str | None] = mapped_column(Text)  # the worker holding the watch lock
    watcher_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_change_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_searchable_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_lag_ms: Mapped[float | None] = mapped_column(Double)
    last_full_scan_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()


class IngestFailure(Base):
    __tablename__ = "ingest_failures"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ingest_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    uri: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = _now()


class AuditEntry(Base):
    """Append-only: a trigger in the migration refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index(
            "ix_audit_log_request_id",
            "request_id",
            postgresql_where=text("request_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[datetime] = _now()
    principals: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    client_id: Mapped[str | None] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(Text, nullable=False)
    method: Mapped[str] = mapped_column(Text, nullable=False)
    target: Mapped[str | None] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    document_ids: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default="{}"
    )
    chunk_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, server_default="{}"
    )
    policy_version: Mapped[int | None] = mapped_column(BigInteger)
    # ok | denied | not_found | invalid | error
    outcome: Mapped[str] = mapped_column(Text, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Double, nullable=False, server_default="0")
    # The request id of the structured logs (migration 0005); None for CLI actions.
    request_id: Mapped[str | None] = mapped_column(Text)


class PolicyRule(Base):
    """One Casbin rule (``p``, ``g``, ``g2`` ...), kept in our own versioned table."""

    __tablename__ = "policy_rules"
    __table_args__ = (UniqueConstraint("ptype", "v0", "v1", "v2", "v3", "v4", "v5"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    ptype: Mapped[str] = mapped_column(Text, nullable=False)
    v0: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    v1: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    v2: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    v3: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    v4: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    v5: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    comment: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_by: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _now()


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class ApiKey(Base):
    """A service-account key, stored only as a SHA-256 hash of its secret part."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    principal: Mapped[str] = mapped_column(Text, nullable=False)
    key_prefix: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(Text, nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    sources: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    collections: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_by: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rotated_from: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (``xid8``), compared in SQL only."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


# Reflection (alembic's model check) maps xid8 columns to this type instead of warning.
ischema_names["xid8"] = Xid8


class DocumentChange(Base):
    """A live document counted (+1) or no longer counted (-1) with these attributes, by
    transaction ``xid`` (migration 0011): kept by a trigger on documents, read to bring a
    cached list_sources count up to date."""

    __tablename__ = "document_changes"
    __table_args__ = (
        CheckConstraint("delta IN (-1, 1)", name="delta"),
        Index("ix_document_changes_xid", "xid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    xid: Mapped[int] = mapped_column(
        Xid8(), nullable=False, server_default=func.pg_current_xact_id()
    )
    changed_at: Mapped[datetime] = _now()
    delta: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    document_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    collection: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    acl: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    content_type: Mapped[str] = mapped_column(Text, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False)


class DocumentChangesHorizon(Base):
    """The one row: log rows of transactions below ``horizon`` may have been pruned."""

    __tablename__ = "document_changes_horizon"
    __table_args__ = (CheckConstraint("id", name="one_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    horizon: Mapped[int] = mapped_column(Xid8(), nullable=False)


class Bm25Posting(Base):
    """One term of one chunk (migration 0003): the BM25 inverted index, kept by triggers."""

    __tablename__ = "bm25_postings"
    __table_args__ = (
        PrimaryKeyConstraint("term", "chunk_id", postgresql_include=["tf", "len"]),
        Index("ix_bm25_postings_chunk_id", "chunk_id"),
    )

    term: Mapped[str] = mapped_column(Text, nullable=False)
    chunk_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tf: Mapped[int] = mapped_column(Integer, nullable=False)
    # The chunk's length in terms, copied so scoring never reads the chunk row.
    len: Mapped[int] = mapped_column(Integer, nullable=False)


class Bm25Term(Base):
    """Document frequency of a term over all chunks (kept by triggers)."""

    __tablename__ = "bm25_terms"

    term: Mapped[str] = mapped_column(Text, primary_key=True)
    df: Mapped[int] = mapped_column(Integer, nullable=False)


class Bm25Corpus(Base):
    """The one row of corpus statistics: chunk count and total length in terms."""

    __tablename__ = "bm25_corpus"
    __table_args__ = (CheckConstraint("id", name="one_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    chunks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_len: Mapped[int] = mapped_column(BigInteger, nullable=False)


__all__ = [
    "EMBEDDING_DIMENSIONS",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Bm25Corpus",
    "Bm25Posting",
    "Bm25Term",
    "Chunk",
    "Document",
    "DocumentChange",
    "DocumentChangesHorizon",
    "IngestFailure",
    "IngestRun",
    "PolicyRule",
    "PolicyVersion",
    "Source",
    "SourceFreshness",
    "Xid8",
]
