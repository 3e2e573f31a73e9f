"""list_sources counts cached per caller, dropped on every documents write of any process.

Real parts: a runtime on an embedded Postgres (policy listener, LISTEN kb_documents), the
real policy engine, writes through an announcing engine of its own (as another process's
ingestion makes them) or through a second process. Each test first shows the cache
*serving* (a write that notifies nobody is not seen), so that "fresh after a notification"
proves the invalidation, not the absence of a cache.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, insert

from core.identity import Caller
from policies.admin import PolicyAdmin
from policies.listener import refresh
from policies.rules import AccessRule
from server.db.engine import make_sync_engine
from server.db.models import Document, Source
from server.db.replicas import DOCUMENTS_CHANNEL, RevocationBarrier
from server.ingest import repository as ingest
from server.runtime import Runtime, open_runtime
from server.search import SearchService
from server.search.source_counts import APPLICATION_NAME, BarrierGeneration, DocumentsGeneration
from server.settings import Settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
ACTOR = Caller.of("svc:cli:tester", transport="cli")
ENG = Caller.of("user:erin", "group:eng")
HR = Caller.of("user:hana", "group:hr")
NOBODY = Caller.of("user:nobody")
WAIT_S = 10.0


def _doc(source: str, collection: str, acl: list[str], name: str | None = None) -> dict[str, Any]:
    ident = uuid.uuid4()
    return {
        "id": ident,
        "source": source,
        "external_id": name or str(ident),
        "uri": f"file:///{ident}",
        "title": name or str(ident),
        "content_type": "text/plain",
        "content_hash": ident.hex,
        "collection": collection,
        "path": f"/{collection}/{ident}",
        "level": 0,
        "acl": acl,
    }


class World:
    """A runtime, its service (with the runtime's cache) and a second writing engine."""

    def __init__(self, rt: Runtime, writer: Engine) -> None:
        self.rt = rt
        self.writer = writer  # its own connections, announcing its writes: another process
        self.service = SearchService(
            rt.reads,
            None,  # type: ignore[arg-type]  # listing needs no model
            rt.settings,
            source_counts=rt.source_counts,
        )
        self.admin = PolicyAdmin(rt.policy_store, rt.policies)

    @property
    def dsn(self) -> str:
        return self.rt.target.dsn

    async def counts(self, caller: Caller) -> dict[tuple[str, str], int]:
        access = self.rt.policies.filter_for(caller)
        found = await self.service.list_sources(access)
        return {(s.source, c.collection): c.documents for s in found for c in s.collections}

    def generation(self) -> int | None:
        return self.rt.source_counts.generation.current()

    async def write(self, fn: Callable[[Any], object]) -> None:
        """One transaction through the announcing engine; returns once this process heard
        its kb_documents notification (the generation moved), or fails."""
        before = self.generation()
        assert before is not None, "the runtime is not following document writes"

        def run() -> None:
            with self.writer.begin() as conn:
                fn(conn)

        await asyncio.to_thread(run)
        await until(lambda: self.generation() not in (None, before), "kb_documents was heard")

    async def write_silently(self, sql: str, *params: object) -> None:
        """A write that notifies nobody (as a hand-run psql statement would)."""

        def run() -> None:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql, params)

        await asyncio.to_thread(run)

    async def settle(self) -> None:
        """Return once every notification committed so far has been heard (they arrive in
        commit order: hearing a fresh one of our own means the earlier ones were too)."""
        generation = self.rt.source_counts.generation
        assert isinstance(generation, DocumentsGeneration)
        marker = uuid.uuid4().hex

        def run() -> None:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("SELECT pg_notify('kb_documents', %s)", (marker,))

        await asyncio.to_thread(run)
        await until(lambda: generation.last_payload == marker, "our own kb_documents")


async def until(check: Callable[[], object], what: str, within_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s:.0f} s: {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def world(settings: Settings) -> AsyncIterator[World]:
    async with open_runtime(settings, load_model=False) as rt:
        async with rt.db.sessions() as session, session.begin():
            session.add_all([Source(name="wiki", kind="files"), Source(name="hr", kind="files")])
            await session.flush()
            await session.execute(
                insert(Document),
                [
                    _doc("wiki", "eng", ["group:eng"], "eng-1"),
                    _doc("wiki", "eng", ["group:eng"], "eng-2"),
                    _doc("wiki", "eng/platform", ["group:eng"], "eng-3"),
                    _doc("hr", "hr", ["group:hr"], "hr-1"),
                ],
            )
        admin = PolicyAdmin(rt.policy_store, rt.policies)
        await admin.add(
            [AccessRule("group:eng", "acl:source"), AccessRule("group:hr", "acl:source")], ACTOR
        )
        await refresh(rt.policies, rt.policy_store)
        await until(lambda: rt.source_counts.generation.current() is not None, "listening")
        writer = make_sync_engine(rt.target, settings)
        try:
            w = World(rt, writer)
            await w.settle()  # the set-up's own notifications are behind us
            yield w
        finally:
            writer.dispose()


ENG_COUNTS = {("wiki", "eng"): 2, ("wiki", "eng/platform"): 1}


async def test_cached_until_another_connection_adds_or_deletes(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(ENG) == ENG_COUNTS
        hits = w.rt.source_counts.hits
        # A write nobody announces is not seen: the answer comes from the cache.
        extra = _doc("wiki", "eng", ["group:eng"], "eng-silent")
        await w.write_silently(
            "INSERT INTO documents (id, source, external_id, uri, title, content_type,"
            " content_hash, collection, path, level, acl) VALUES"
            " (%s, 'wiki', 'eng-silent', 'file:///s', 's', 'text/plain', 'h', 'eng', '/s', 0,"
            " '{group:eng}')",
            extra["id"],
        )
        assert await w.counts(ENG) == ENG_COUNTS
        assert w.rt.source_counts.hits == hits + 1
        # Another engine adds a document (kb_documents at its commit): seen at once.
        added = _doc("wiki", "eng/platform", ["group:eng"], "eng-4")
        await w.write(lambda conn: conn.execute(insert(Document).values(**added)))
        assert await w.counts(ENG) == {("wiki", "eng"): 3, ("wiki", "eng/platform"): 2}
        # ... and soft-deletes two (the ingestion's own delete path).
        await w.write(lambda conn: ingest.mark_deleted(conn, "wiki", ["eng-1", "eng-4"]))
        assert await w.counts(ENG) == {("wiki", "eng"): 2, ("wiki", "eng/platform"): 1}


async def test_a_delete_by_another_process_is_seen(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(ENG) == ENG_COUNTS
        before = w.generation()
        assert settings.database.url is not None
        child = (
            "import sys\n"
            "from server.db.engine import DatabaseTarget, make_sync_engine, to_sqlalchemy_url\n"
            "from server.ingest import repository\n"
            "from server.settings import Settings\n"
            "url = sys.argv[1]\n"
            "engine = make_sync_engine(DatabaseTarget(to_sqlalchemy_url(url)),"
            " Settings(database={'url': url}, home=sys.argv[2]))\n"
            "with engine.begin() as conn:\n"
            "    assert repository.mark_deleted(conn, 'wiki', ['eng-3']) == 1\n"
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", child, settings.database.url.get_secret_value(), "/tmp"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        await until(lambda: w.generation() not in (None, before), "the child's kb_documents")
        assert await w.counts(ENG) == {("wiki", "eng"): 2}


async def test_acl_only_change_notifies_and_is_seen(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(ENG) == ENG_COUNTS
        assert await w.counts(HR) == {("hr", "hr"): 1}
        # The ingestion's path for a new ACL without new text (chunks and document).
        await w.write(
            lambda conn: ingest.apply_placement(
                conn, "wiki", "eng-2", collection="eng", path="/eng/2", level=0, acl=["group:hr"]
            )
        )
        assert await w.counts(ENG) == {("wiki", "eng"): 1, ("wiki", "eng/platform"): 1}
        assert await w.counts(HR) == {("hr", "hr"): 1, ("wiki", "eng"): 1}


async def test_policy_change_is_seen_without_any_document_write(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(ENG) == ENG_COUNTS
        generation = w.generation()
        _, items = await w.admin.list_items()
        grant = next(s.id for s in items if s.item == AccessRule("group:eng", "acl:source"))
        await w.rt.policy_store.remove([grant], ACTOR)
        await refresh(w.rt.policies, w.rt.policy_store)
        assert w.generation() == generation  # documents untouched: the version keys it out
        assert await w.counts(ENG) == {}
        await w.admin.add([AccessRule("group:eng", "collection:eng/platform")], ACTOR)
        await refresh(w.rt.policies, w.rt.policy_store)
        assert await w.counts(ENG) == {("wiki", "eng/platform"): 1}


async def test_switching_a_source_off_is_seen(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(HR) == {("hr", "hr"): 1}
        version = w.rt.policies.version

        def switch_off(conn: Any) -> None:
            ingest.upsert_source(
                conn, name="hr", kind="files", config={}, origin="config", enabled=False
            )

        await asyncio.to_thread(lambda: _in_transaction(w.writer, switch_off))
        await until(lambda: "hr" in w.rt.policies.disabled_sources, "the policy listener")
        # Same policy version, another set of disabled sources: a different answer.
        assert w.rt.policies.version == version
        assert await w.counts(HR) == {}


def _in_transaction(engine: Engine, fn: Callable[[Any], object]) -> None:
    with engine.begin() as conn:
        fn(conn)


async def test_answers_are_per_caller(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(NOBODY) == {}
        assert await w.counts(ENG) == ENG_COUNTS
        assert await w.counts(HR) == {("hr", "hr"): 1}
        # Cached now; asked again in another order, each caller still gets their own.
        hits = w.rt.source_counts.hits
        assert await w.counts(HR) == {("hr", "hr"): 1}
        assert await w.counts(NOBODY) == {}
        assert await w.counts(ENG) == ENG_COUNTS
        assert w.rt.source_counts.hits == hits + 3
        # The same principals through an API key narrowed to one collection.
        narrowed = replace(ENG, restrict_collections=frozenset({"eng/platform"}))
        assert await w.counts(narrowed) == {("wiki", "eng/platform"): 1}
        assert await w.counts(ENG) == ENG_COUNTS
        # A caller holding both groups is not served either one's answer.
        both = Caller.of("user:boss", "group:eng", "group:hr")
        assert await w.counts(both) == {**ENG_COUNTS, ("hr", "hr"): 1}


async def test_no_cache_while_the_listen_connection_is_down(settings: Settings) -> None:
    async with world(settings) as w:
        generation = w.rt.source_counts.generation
        assert isinstance(generation, DocumentsGeneration)
        assert await w.counts(ENG) == ENG_COUNTS

        assert settings.database.url is not None
        login = settings.database.url.get_secret_value()  # a superuser, as the listener

        def terminate() -> int:
            with psycopg.connect(login, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND datname = current_database()",
                    (APPLICATION_NAME,),
                ).fetchall()
            return len(rows)

        # Terminate and, while it is down, write silently: whether or not it reconnected
        # yet, the write must show (a reconnect starts a new generation).
        assert await asyncio.to_thread(terminate) == 1
        await until(lambda: generation.current() is None, "the lost connection noticed", 5)
        await w.write_silently(
            "UPDATE documents SET acl = '{group:hr}' WHERE external_id = 'eng-1'"
        )
        assert await w.counts(ENG) == {("wiki", "eng"): 1, ("wiki", "eng/platform"): 1}
        await until(lambda: generation.current() is not None, "reconnected")
        assert await w.counts(ENG) == {("wiki", "eng"): 1, ("wiki", "eng/platform"): 1}
        hits = w.rt.source_counts.hits
        assert await w.counts(ENG) == {("wiki", "eng"): 1, ("wiki", "eng/platform"): 1}
        assert w.rt.source_counts.hits == hits + 1  # caching again


async def test_concurrent_misses_share_one_query(settings: Settings) -> None:
    async with world(settings) as w:
        computed = w.rt.source_counts.computed
        answers = await asyncio.gather(*(w.counts(ENG) for _ in range(8)))
        assert answers == [ENG_COUNTS] * 8
        assert w.rt.source_counts.computed == computed + 1  # one query answered all eight


async def test_with_read_replicas_the_barrier_is_the_generation(settings: Settings) -> None:
    """The barrier's count moves only after it raised the position replicas must reach."""
    assert settings.database.url is not None
    dsn = settings.database.url.get_secret_value()
    barrier = RevocationBarrier(dsn, [DOCUMENTS_CHANNEL], max_lag_s=None)
    generation = BarrierGeneration(barrier)
    assert generation.current() is None  # not listening yet: nothing cached
    await barrier.start()
    try:
        await until(lambda: generation.current() is not None, "the barrier listening")
        before, raised = generation.current(), barrier.required()

        def write() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("SELECT pg_notify(%s, '')", (DOCUMENTS_CHANNEL,))
                conn.execute("SELECT pg_current_wal_insert_lsn()")

        await asyncio.to_thread(write)
        await until(lambda: generation.current() != before, "the barrier heard it")
        required = barrier.required()
        assert required is not None and raised is not None and required >= raised
    finally:
        await barrier.stop()
    assert generation.current() is None
