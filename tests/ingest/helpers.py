"""Helpers shared by the ingestion and job tests: run syncs, read back what the KB holds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text

from server.db.engine import DatabaseTarget, make_sync_engine, to_sqlalchemy_url
from server.embeddings.base import Embedder
from server.ingest import catalog
from server.ingest.service import SyncResult, run_sync
from server.settings import Settings


@contextmanager
def sync_engine(settings: Settings) -> Iterator[Engine]:
    assert settings.database.url is not None
    target = DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))
    engine = make_sync_engine(target, settings)
    try:
        yield engine
    finally:
        engine.dispose()


def sync(
    settings: Settings, engine: Engine, embedder: Embedder, name: str, **kwargs: Any
) -> SyncResult:
    return run_sync(settings, engine, embedder, name, **kwargs)


def run_row(engine: Engine, run_id: int) -> dict[str, Any]:
    return catalog.get_run(engine, run_id)


def live_documents(engine: Engine, source: str) -> dict[str, dict[str, Any]]:
    """external id -> document row (with its chunk texts) of every live document.

    Both statements read one snapshot: tests poll this while a worker is writing, and under
    READ COMMITTED a document committed between them showed chunks without its row."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        docs = conn.execute(
            text(
                "SELECT id, external_id, content_hash, title, collection, path, level, acl, "
                "content_type, metadata, modified_at FROM documents "
                "WHERE source = :s AND deleted_at IS NULL"
            ),
            {"s": source},
        ).mappings()
        out = {d["external_id"]: dict(d) for d in docs}
        chunks = conn.execute(
            text(
                "SELECT d.external_id, c.ordinal, c.heading, c.text FROM chunks c "
                "JOIN documents d ON d.id = c.document_id WHERE d.source = :s "
                "ORDER BY d.external_id, c.ordinal"
            ),
            {"s": source},
        ).all()
    for d in out.values():
        d["chunks"] = []
    for ext, _ordinal, heading, body in chunks:
        assert ext in out, f"chunks of a deleted or unknown document {ext!r}"
        out[ext]["chunks"].append((heading, body))
    return out


def integrity_problems(engine: Engine) -> list[str]:
    """Invariants that must hold after every sync, whatever happened before."""
    checks = {
        "chunks of deleted documents": "SELECT count(*) FROM chunks c JOIN documents d "
        "ON d.id = c.document_id WHERE d.deleted_at IS NOT NULL",
        "chunk columns differing from their document's": "SELECT count(*) FROM chunks c "
        "JOIN documents d ON d.id = c.document_id WHERE c.source <> d.source "
        "OR c.collection <> d.collection OR c.path <> d.path OR c.level <> d.level "
        "OR c.acl <> d.acl OR c.content_type <> d.content_type "
        "OR c.doc_metadata <> d.metadata "
        "OR c.modified_at IS DISTINCT FROM d.modified_at",
        "gaps in chunk ordinals": "SELECT count(*) FROM (SELECT document_id, count(*) n, "
        "max(ordinal) m FROM chunks GROUP BY document_id) x WHERE n <> m + 1",
        "live documents without chunks": "SELECT count(*) FROM documents d WHERE "
        "d.deleted_at IS NULL AND d.content <> '' AND NOT EXISTS "
        "(SELECT 1 FROM chunks c WHERE c.document_id = d.id)",
    }
    problems = []
    with engine.connect() as conn:
        for name, query in checks.items():
            n = conn.execute(text(query)).scalar_one()
            if n:
                problems.append(f"{n} {name}")
    return problems
