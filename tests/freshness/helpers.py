"""Shared by the freshness tests: an embedder that counts (and can hold) its calls, source
databases on the local MariaDB and PostgreSQL servers, and read-backs of the index."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from server.embeddings.base import Embedder, Vectors

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class CountingEmbedder:
    """The real model, counting every document text it embeds. ``hold()`` makes the next
    embedding call wait until ``release()`` (``entered`` is set when one is waiting), so a
    test can change the source while a sync is in the middle of its work."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts = 0
        self.calls = 0
        self.entered = threading.Event()
        self._gate: threading.Event | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            self.texts += len(texts)
            self.calls += 1
            gate = self._gate
        if gate is not None:
            self.entered.set()
            assert gate.wait(120), "the test never released the embedder"
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)

    def hold(self) -> None:
        self.entered.clear()
        self._gate = threading.Event()

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()


@contextmanager
def postgres_source_database() -> Iterator[str]:
    """A uniquely named database on the local PostgreSQL source server; its SQLAlchemy URL."""
    name = f"kbfresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def chunk_rows(engine: Engine, source: str) -> dict[int, dict[str, Any]]:
    """chunk id -> (external id, acl, collection, path, level, metadata) of live chunks."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.id, d.external_id, d.id AS document_id, c.acl, c.collection, c.path, "
                "c.level, c.doc_metadata, c.embedding::text AS embedding FROM chunks c "
                "JOIN documents d ON d.id = c.document_id "
                "WHERE d.source = :s AND d.deleted_at IS NULL"
            ),
            {"s": source},
        ).mappings()
        return {int(r["id"]): dict(r) for r in rows}


def postings_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM bm25_postings")).scalar_one())


def last_run(engine: Engine, source: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = (
            conn.execute(
                text("SELECT * FROM ingest_runs WHERE source = :s ORDER BY id DESC LIMIT 1"),
                {"s": source},
            )
            .mappings()
            .one()
        )
    return dict(row)
