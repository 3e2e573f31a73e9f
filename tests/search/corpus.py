"""A small real corpus for search tests, inserted directly (documents + embedded chunks).

The ingestion pipeline is tested on its own; here we want exact control over every
authorization column, so rows are written with plain SQL and embedded with the real model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import true

from core.identity import Caller
from policies.access import AccessFilter, AuthzColumns, RowAttributes, make_access_filter
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.embeddings.base import AsyncEmbedder, Embedder
from server.search import SearchService, SearchTuning
from server.settings import Settings


@dataclass
class Doc:
    title: str
    paragraphs: Sequence[str]
    acl: Sequence[str]
    source: str = "wiki"
    collection: str = "eng"
    content_type: str = "text/markdown"
    metadata: dict[str, Any] = field(default_factory=dict)
    modified_at: datetime | None = None
    path: str = ""
    level: int = 0
    deleted: bool = False
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def vector_literal(vec: Sequence[float] | np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.7f}" for x in vec) + "]"


def insert_sources(dsn: str, sources: dict[str, tuple[str, str]]) -> None:
    """``{name: (kind, description)}``."""
    with psycopg.connect(dsn) as conn:
        for name, (kind, description) in sources.items():
            conn.execute(
                "INSERT INTO sources (name, kind, config) VALUES (%s, %s, %s::jsonb)",
                (name, kind, json.dumps({"description": description})),
            )


def insert_documents(
    dsn: str,
    docs: Sequence[Doc],
    embedder: Embedder | None = None,
    vectors: Sequence[Sequence[np.ndarray]] | None = None,
) -> dict[uuid.UUID, list[int]]:
    """Insert documents and one chunk per paragraph; return chunk ids per document."""
    if vectors is None:
        assert embedder is not None
        texts = [p for d in docs for p in d.paragraphs]
        flat = embedder.embed_documents(texts)
        vectors, i = [], 0
        for d in docs:
            vectors.append([flat[i + j] for j in range(len(d.paragraphs))])
            i += len(d.paragraphs)
    chunk_ids: dict[uuid.UUID, list[int]] = {}
    with psycopg.connect(dsn) as conn:
        for doc, vecs in zip(docs, vectors, strict=True):
            content = "\n\n".join(doc.paragraphs)
            conn.execute(
                "INSERT INTO documents (id, source, external_id, uri, title, content_type,"
                " content_hash, content, metadata, collection, path, level, acl, modified_at,"
                " deleted_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s,%s,%s,%s,%s)",
                (
                    doc.id,
                    doc.source,
                    str(doc.id),
                    f"https://{doc.source}.example.com/{doc.id}",
                    doc.title,
                    doc.content_type,
                    "h" + doc.id.hex,
                    content,
                    json.dumps(doc.metadata),
                    doc.collection,
                    doc.path,
                    doc.level,
                    list(doc.acl),
                    doc.modified_at,
                    datetime.now(UTC) if doc.deleted else None,
                ),
            )
            ids = []
            for ordinal, (text, vec) in enumerate(zip(doc.paragraphs, vecs, strict=True)):
                row = conn.execute(
                    "INSERT INTO chunks (document_id, ordinal, heading, text, token_count,"
                    " embedding, source, collection, path, level, acl, content_type,"
                    " doc_metadata, modified_at) VALUES (%s,%s,%s,%s,%s,%s::vector,%s,%s,%s,%s,"
                    "%s,%s,%s::jsonb,%s) RETURNING id",
                    (
                        doc.id,
                        ordinal,
                        doc.title,
                        text,
                        len(text.split()),
                        vector_literal(vec),
                        doc.source,
                        doc.collection,
                        doc.path,
                        doc.level,
                        list(doc.acl),
                        doc.content_type,
                        json.dumps(doc.metadata),
                        doc.modified_at,
                    ),
                ).fetchone()
                assert row is not None
                ids.append(int(row[0]))
            chunk_ids[doc.id] = ids
    return chunk_ids


def acl_filter(*principals: str) -> AccessFilter:
    """A filter that allows documents whose ACL names one of ``principals``."""
    caller = Caller.of(*principals)
    names = sorted(caller.principals)

    def where(columns: AuthzColumns) -> Any:
        return columns.acl.overlap(names)

    def permits(row: RowAttributes) -> bool:
        return bool(set(row.acl) & set(names))

    return make_access_filter(caller=caller, policy_version=1, where=where, permits=permits)


def leaky_sql_filter(*principals: str) -> AccessFilter:
    """A filter whose SQL predicate wrongly allows everything (a compiler bug), while the
    per-row re-check is right: what the service returns must still be correct."""
    caller = Caller.of(*principals)
    names = set(caller.principals)
    return make_access_filter(
        caller=caller,
        policy_version=1,
        where=lambda columns: true(),
        permits=lambda row: bool(set(row.acl) & names),
    )


@asynccontextmanager
async def open_service(
    settings: Settings, embedder: Embedder, tuning: SearchTuning | None = None
) -> AsyncIterator[SearchService]:
    assert settings.database.url is not None
    target = DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))
    db = Database.open(target, settings)
    async_embedder = AsyncEmbedder(embedder)
    try:
        yield SearchService(db, async_embedder, settings, tuning)
    finally:
        async_embedder.close()
        await db.dispose()
