"""The pieces of read-replica routing that need no replica: LSN order, the lag floor, and
the write announcement every primary engine makes at commit (on the session's database)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import ClauseElement

from server.db.engine import Database, DatabaseTarget, make_sync_engine
from server.db.models import AuditEntry, Chunk, Document, IngestRun, Source
from server.db.replicas import RevocationBarrier, parse_lsn
from server.db.revocations import _WRITES, DOCUMENTS_CHANNEL
from server.settings import Settings


def test_lsn_order_crosses_the_32_bit_boundary() -> None:
    assert parse_lsn("0/FFFFFFFF") < parse_lsn("1/0") < parse_lsn("1/1") < parse_lsn("A/0")
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_barrier_is_closed_until_listening_and_the_lag_floor_trails_by_max_lag() -> None:
    clock = FakeClock()
    barrier = RevocationBarrier("", [], max_lag_s=5.0, clock=clock)
    assert barrier.required() is None  # not listening: no replica at all
    barrier._listening = True  # what a live LISTEN connection sets
    barrier.observe(100, heard=True)  # the position at connect
    assert barrier.required() == 100
    for step in range(1, 11):  # the primary moves on; nothing revoked
        clock.now += 1.0
        barrier.observe(100 + step * 10, heard=False)
    # Positions sampled 5 s ago or earlier: the newest of them is the floor.
    assert barrier.required() == 150
    clock.now += 2.0
    assert barrier.required() == 170
    barrier.observe(500, heard=True)  # a revocation heard now: no lag allowed past it
    assert barrier.required() == 500
    assert RevocationBarrier("", [], max_lag_s=None, clock=clock).required() is None


def _sql(stmt: ClauseElement) -> str:
    return str(stmt.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def test_writes_to_documents_and_chunks_and_dropped_sources_are_recognised() -> None:
    upsert = pg_insert(Document).values(title="x")
    writes = [
        _sql(update(Document).values(title="x")),
        _sql(delete(Chunk).where(Chunk.document_id == uuid.uuid4())),
        _sql(upsert.on_conflict_do_update(index_elements=["id"], set_={"title": "y"})),
        _sql(delete(Source).where(Source.name == "s")),
        'UPDATE "documents" SET acl = %s',
        "delete from public.chunks",
    ]
    others = [
        _sql(select(Document.id)),
        _sql(update(IngestRun).values(status="done")),
        _sql(pg_insert(AuditEntry).values(method="m")),
        "UPDATE documents_archive SET x = 1",
        _sql(update(Source).values(sync_state={})),  # cursors and parse markers
        _sql(pg_insert(Source).values(name="s", kind="files")),
        "COPY chunks FROM STDIN",  # preceded by the documents upsert in the same transaction
    ]
    assert all(_WRITES.search(s) for s in writes), [s for s in writes if not _WRITES.search(s)]
    assert not any(_WRITES.search(s) for s in others), [s for s in others if _WRITES.search(s)]


def _document(source: str) -> Document:
    return Document(
        source=source,
        external_id=uuid.uuid4().hex,
        uri="file:///x",
        title="x",
        content_type="text/plain",
        content_hash="h",
        collection="c",
        path="/x",
        level=0,
        acl=[],
    )


def _drain(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    return [n.channel for n in conn.notifies(timeout=0.5)]


@pytest.mark.anyio
async def test_primary_engines_announce_committed_document_writes_only(
    db_target: DatabaseTarget, settings: Settings
) -> None:
    with psycopg.connect(db_target.dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {DOCUMENTS_CHANNEL}")
        db = Database.open(db_target, settings)
        try:
            async with db.sessions() as session, session.begin():
                session.add(Source(name="a", kind="files"))  # a source alone: nothing
            assert await asyncio.to_thread(_drain, listener) == []
            async with db.sessions() as session, session.begin():
                session.add(_document("a"))
            assert await asyncio.to_thread(_drain, listener) == [DOCUMENTS_CHANNEL]

            async with db.sessions() as session:  # rolled back: nothing to hear
                session.add(_document("a"))
                await session.flush()
                await session.rollback()
            async with db.sessions() as session, session.begin():  # a read: nothing either
                await session.execute(select(Document.title))
            assert await asyncio.to_thread(_drain, listener) == []
        finally:
            await db.dispose()

        engine = make_sync_engine(db_target, settings)
        try:
            with engine.begin() as conn:
                conn.execute(delete(Source).where(Source.name == "a"))
            assert _drain(listener) == [DOCUMENTS_CHANNEL]
            with engine.begin() as conn:
                conn.execute(text("SELECT count(*) FROM documents"))
            assert _drain(listener) == []
        finally:
            engine.dispose()
