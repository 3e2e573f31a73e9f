"""Cached list_sources counts brought up to date from the documents change log.

Real parts, as in test_source_counts: a runtime on an embedded PostgreSQL following
kb_documents, the real policy engine, writes through an announcing engine of its own. Each
answer through the cache is compared with a count made afresh in the same database, and
the tests check that the cache really brought its answer forward (``advanced``), so an
equal answer cannot come from a recount alone."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import delete, insert, text, update

from core.identity import Caller
from policies.listener import refresh
from policies.rules import AccessRule
from server.db.models import Document
from server.ingest import repository as ingest
from server.search import source_tally
from server.settings import Settings
from tests.search.test_source_counts import ACTOR, ENG, ENG_COUNTS, HR, NOBODY, World, until, world

pytestmark = pytest.mark.anyio

BOTH = Caller.of("user:boss", "group:eng", "group:hr")
CONTRACTOR = Caller.of("user:cora", "group:eng", "group:contractors")
CALLERS = (ENG, HR, NOBODY, BOTH, CONTRACTOR)
COLLECTIONS = ("eng", "eng/platform", "hr", "misc")
PATHS = ("/eng/notes/", "/eng/secret/", "/hr/pay/", "/misc/")
ACLS = ((), ("group:eng",), ("group:hr",), ("group:eng", "group:hr"), ("user:cora",))


async def fresh(w: World, caller: Caller) -> dict[tuple[str, str], int]:
    """The caller's counts counted afresh, past every cache."""
    access = w.rt.policies.filter_for(caller)
    async with w.rt.db.sessions() as session, session.begin():
        tally = await source_tally.count(session, access)
    return dict(tally.counts)


async def mixed_policy(w: World) -> None:
    """Rules of several kinds beside the world's acl:source grants: a collection with a
    level bound and a metadata condition, and a path deny."""
    await w.admin.add(
        [
            AccessRule("group:hr", "collection:hr", max_level=3, when='metadata.region == "eu"'),
            AccessRule("group:contractors", "path:/eng/secret/", effect="deny"),
        ],
        ACTOR,
    )
    await refresh(w.rt.policies, w.rt.policy_store)


def random_doc(rng: random.Random, source: str) -> dict[str, Any]:
    ident = uuid.uuid4()
    return {
        "id": ident,
        "source": source,
        "external_id": f"gen-{ident}",
        "uri": f"file:///{ident}",
        "title": f"t-{ident}",
        "content_type": "text/plain",
        "content_hash": ident.hex,
        "collection": rng.choice(COLLECTIONS),
        "path": rng.choice(PATHS) + ident.hex,
        "level": rng.randint(0, 5),
        "acl": list(rng.choice(ACLS)),
        "metadata_": {"region": rng.choice(("eu", "us"))},
    }


async def test_a_write_brings_the_cached_count_forward(settings: Settings) -> None:
    async with world(settings) as w:
        assert await w.counts(ENG) == ENG_COUNTS
        cache = w.rt.source_counts
        advanced = cache.advanced
        added = random_doc(random.Random(1), "wiki") | {"collection": "eng", "acl": ["group:eng"]}
        await w.write(lambda conn: conn.execute(insert(Document).values(**added)))
        expected = {("wiki", "eng"): 3, ("wiki", "eng/platform"): 1}
        assert await w.counts(ENG) == expected == await fresh(w, ENG)
        assert cache.advanced == advanced + 1
        await w.write(lambda conn: ingest.mark_deleted(conn, "wiki", ["eng-1", "eng-3"]))
        assert await w.counts(ENG) == {("wiki", "eng"): 2} == await fresh(w, ENG)
        assert cache.advanced == advanced + 2


async def test_random_writes_keep_every_callers_count_exact(settings: Settings) -> None:
    rng = random.Random(20261201)
    async with world(settings) as w:
        await mixed_policy(w)
        cache = w.rt.source_counts
        live: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []

        def step(conn: Any) -> None:
            for _ in range(rng.randint(1, 4)):  # several changes in one transaction
                op = rng.choice(("add",) * 4 + ("delete", "move", "drop", "revive", "title"))
                if op == "add" or not live:
                    doc = random_doc(rng, rng.choice(("wiki", "hr")))
                    conn.execute(insert(Document).values(**doc))
                    live.append(doc)
                    continue
                doc = rng.choice(live)
                if op == "delete":  # the ingestion's soft delete
                    ingest.mark_deleted(conn, doc["source"], [doc["external_id"]])
                    live.remove(doc)
                    gone.append(doc)
                elif op == "move":  # re-authorised and placed elsewhere, same text
                    ingest.apply_placement(
                        conn,
                        doc["source"],
                        doc["external_id"],
                        collection=rng.choice(COLLECTIONS),
                        path=rng.choice(PATHS) + "moved",
                        level=rng.randint(0, 5),
                        acl=list(rng.choice(ACLS)),
                    )
                elif op == "drop":  # a hard delete (purge, or a source dropped)
                    conn.execute(delete(Document).where(Document.id == doc["id"]))
                    live.remove(doc)
                elif op == "revive" and gone:
                    back = gone.pop()
                    conn.execute(
                        update(Document).where(Document.id == back["id"]).values(deleted_at=None)
                    )
                    live.append(back)
                else:  # a write that changes nothing a count sees
                    conn.execute(
                        update(Document).where(Document.id == doc["id"]).values(title="renamed")
                    )

        for caller in CALLERS:
            assert await w.counts(caller) == await fresh(w, caller)
        advanced = cache.advanced
        for _ in range(25):
            await w.write(step)
            for caller in CALLERS:
                assert await w.counts(caller) == await fresh(w, caller), caller
        # Every caller's answer was brought forward at every step, not recounted.
        assert cache.advanced - advanced == 25 * len(CALLERS)
        # The test would have caught a difference: callers see different, non-empty counts.
        seen = [await fresh(w, c) for c in CALLERS]
        assert all(seen[i] != seen[j] for i in range(len(seen)) for j in range(i))
        assert all(s for c, s in zip(CALLERS, seen, strict=True) if c is not NOBODY)


async def test_a_write_in_flight_during_the_count_is_not_missed(settings: Settings) -> None:
    """A transaction still open when the count was taken commits afterwards: its rows have
    an older id than later ones, yet the count must pick them up."""
    async with world(settings) as w:
        opened, release = threading.Event(), threading.Event()
        doc = random_doc(random.Random(2), "wiki") | {"collection": "eng", "acl": ["group:eng"]}

        def slow_writer() -> None:
            with w.writer.begin() as conn:
                conn.execute(insert(Document).values(**doc))
                opened.set()
                release.wait(30)

        before = w.generation()
        writer = asyncio.create_task(asyncio.to_thread(slow_writer))
        await until(opened.is_set, "the writer's transaction is open")
        assert await w.counts(ENG) == ENG_COUNTS  # counted while it is open
        release.set()
        await writer
        await until(lambda: w.generation() not in (None, before), "kb_documents was heard")
        advanced = w.rt.source_counts.advanced
        assert await w.counts(ENG) == {("wiki", "eng"): 3, ("wiki", "eng/platform"): 1}
        assert w.rt.source_counts.advanced == advanced + 1


async def test_a_pruned_log_or_a_truncate_means_a_fresh_count(settings: Settings) -> None:
    async with world(settings) as w:
        cache = w.rt.source_counts
        assert await w.counts(ENG) == ENG_COUNTS
        advanced = cache.advanced
        # Prune everything up to now: the cached count's snapshot is behind the horizon.
        added = random_doc(random.Random(3), "wiki") | {"collection": "eng", "acl": ["group:eng"]}

        def add_and_prune(conn: Any) -> None:
            conn.execute(insert(Document).values(**added))

        await w.write(add_and_prune)
        with w.writer.begin() as conn:
            assert ingest.prune_document_changes(conn, keep_s=0) >= 1
        assert await w.counts(ENG) == {("wiki", "eng"): 3, ("wiki", "eng/platform"): 1}
        assert cache.advanced == advanced  # counted afresh
        assert cache.computed >= 2

        # TRUNCATE fires no row trigger: no count from before it may be brought forward.
        assert settings.database.url is not None
        login = settings.database.url.get_secret_value()
        with psycopg.connect(login, autocommit=True) as owner:
            owner.execute("TRUNCATE documents CASCADE")
        await w.write(lambda conn: ingest.mark_deleted(conn, "wiki", ["nothing"]))
        await w.settle()
        again = random_doc(random.Random(4), "wiki") | {"collection": "eng", "acl": ["group:eng"]}
        await w.write(lambda conn: conn.execute(insert(Document).values(**again)))
        assert await w.counts(ENG) == {("wiki", "eng"): 1} == await fresh(w, ENG)
        assert cache.advanced == advanced


async def test_a_count_that_saw_more_than_this_snapshot_is_counted_afresh(
    settings: Settings,
) -> None:
    """With read replicas a count may come from one that had replayed more than the server
    asked next: bringing it forward there would count some changes twice."""
    async with world(settings) as w:
        access = w.rt.policies.filter_for(ENG)

        async def forward(snapshot: str) -> source_tally.Tally | None:
            async with w.rt.db.sessions() as session, session.begin():
                old = source_tally.Tally(ENG_COUNTS, snapshot)
                return await source_tally.bring_forward(session, access, old)

        async with w.rt.db.sessions() as session, session.begin():
            now = str(await session.scalar(text("SELECT pg_current_snapshot()::text")))
        assert await forward(now) is not None  # the same server's own snapshot: fine
        xmax = int(now.split(":")[1])
        assert await forward(f"{xmax + 5}:{xmax + 5}:") is None  # one that is ahead

        # One that saw as committed a transaction still running here.
        opened, release = threading.Event(), threading.Event()
        running: list[int] = []

        def open_writer() -> None:
            with w.writer.begin() as conn:
                running.append(
                    int(conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
                )
                opened.set()
                release.wait(30)

        writer = asyncio.create_task(asyncio.to_thread(open_writer))
        try:
            await until(opened.is_set, "the writer's transaction is open")
            xid = running[0]
            assert await forward(f"{xid + 1}:{xid + 1}:") is None
        finally:
            release.set()
            await writer
        assert await forward(f"{xid + 1}:{xid + 1}:") is not None  # committed now


async def test_an_expired_count_is_brought_forward_with_writes_nobody_announced(
    settings: Settings,
) -> None:
    """Entries expire as a bound for writes that bypass the notifications (a hand-run
    DELETE); the change log has those too, so an expired count is brought forward."""
    async with world(settings) as w:
        cache = w.rt.source_counts
        cache.max_age_s = 0.5
        assert await w.counts(ENG) == ENG_COUNTS
        advanced, computed = cache.advanced, cache.computed
        generation = w.generation()
        await w.write_silently(
            "UPDATE documents SET deleted_at = now() WHERE external_id = 'eng-1'"
        )
        await asyncio.sleep(0.6)
        assert w.generation() == generation  # nothing was announced
        assert await w.counts(ENG) == {("wiki", "eng"): 1, ("wiki", "eng/platform"): 1}
        assert (cache.advanced, cache.computed) == (advanced + 1, computed + 1)
