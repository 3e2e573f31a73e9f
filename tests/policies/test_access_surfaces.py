"""Access holes closed at the filter: disabled sources, chunk-rebuilt text, SQL counts.

Every surface (search, fetch, listing, completion, source counts) runs on the same
``AccessFilter``; these tests go through the search service with filters made by the real
policy engine over a real database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from sqlalchemy import create_engine, true

from core.errors import NotFound
from core.identity import Caller
from policies.access import AccessFilter, RowAttributes, make_access_filter
from policies.engine import PolicyEngine
from policies.listener import BOOTSTRAP_ACTOR, PolicyListener, poll
from policies.rules import AccessRule, PolicySet
from policies.store import PolicyStore
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.embeddings.base import Embedder
from server.ingest.repository import upsert_source
from server.search import SearchQuery, SearchService
from server.settings import Settings
from tests.search.conftest import ALL, ENG, HR, Company, company_docs
from tests.search.corpus import insert_documents, insert_sources, leaky_sql_filter, open_service

pytestmark = pytest.mark.anyio

ALICE = Caller.of("user:alice", ENG, HR, ALL)
ROOT = Caller.of("user:root")
POLICY = PolicySet.of([AccessRule(ALL, "acl:source"), AccessRule(ENG, "acl:source")])
HR_TITLES = {"Quarterly payroll schedule", "Parental leave policy"}


@pytest.fixture
def company(fresh_database: str, embedder: Embedder) -> Company:
    """The search tests' company corpus (wiki, hr and finance sources), in this test's DB."""
    insert_sources(
        fresh_database,
        {"wiki": ("files", "Wiki"), "hr": ("files", "HR"), "finance": ("sql", "Finance")},
    )
    docs = company_docs()
    chunks = insert_documents(fresh_database, docs, embedder)
    return Company(fresh_database, {d.title: d for d in docs}, chunks)


@asynccontextmanager
async def open_store(
    settings: Settings, configured: dict[str, bool] | None = None
) -> AsyncIterator[PolicyStore]:
    assert settings.database.url is not None
    db = Database.open(
        DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value())), settings
    )
    try:
        yield PolicyStore(db, configured)
    finally:
        await db.dispose()


async def surfaces(
    svc: SearchService, access: AccessFilter, company: Company
) -> dict[str, set[str]]:
    """What one caller sees of the HR documents through every read surface."""
    hits = await svc.search(access, SearchQuery("payroll salaries parental leave", top_k=20))
    listed = await svc.list_documents(access, limit=100)
    completed = await svc.complete_documents(access, "", limit=50)
    sources = await svc.list_sources(access)
    fetched = set()
    for title in HR_TITLES:
        try:
            fetched.add((await svc.fetch_document(access, str(company.id(title)))).summary.title)
        except NotFound:
            pass
    return {
        "search": {h.title for h in hits.hits} & HR_TITLES,
        "list": {d.title for d in listed.items} & HR_TITLES,
        "complete": {d.title for d in completed} & HR_TITLES,
        "fetch": fetched,
        "sources": {s.source for s in sources},
    }


async def test_a_disabled_source_is_offline_on_every_surface_for_everyone(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    async with open_store(settings) as store, open_service(settings, embedder) as svc:
        await store.add(POLICY.items(), BOOTSTRAP_ACTOR)
        engine = PolicyEngine(await store.load_snapshot(["user:root"]))
        for caller in (ALICE, ROOT):
            seen = await surfaces(svc, engine.filter_for(caller), company)
            assert seen["search"] and seen["list"] == seen["fetch"] == HR_TITLES, caller
            assert seen["complete"] == HR_TITLES and "hr" in seen["sources"]

        # Switch the stored source off (as the API does): the next poll takes it offline.
        with psycopg.connect(company.dsn) as conn:
            conn.execute("UPDATE sources SET enabled = false WHERE name = 'hr'")
        assert await poll(engine, store) is True
        assert engine.disabled_sources == {"hr"}
        for caller in (ALICE, ROOT):  # admins too: "neither synced nor served"
            access = engine.filter_for(caller)
            seen = await surfaces(svc, access, company)
            assert seen == {
                "search": set(),
                "list": set(),
                "complete": set(),
                "fetch": set(),
                "sources": {"wiki", "finance"},
            }, caller
            # The re-check holds the line on its own, whatever SQL let through.
            hr_row = RowAttributes(str(uuid.uuid4()), "hr", "hr", "/x", 0, (HR, ALL), "text/plain")
            assert not access.permits(hr_row)
        assert await poll(engine, store) is False  # nothing moved: only confirmed

    # A source disabled in the configuration file is offline even though its row says
    # enabled, and the file's flag wins over the row for the sources it defines.
    async with open_store(settings, {"finance": False, "hr": True}) as store:
        snapshot = await store.load_snapshot(())
        assert snapshot.disabled_sources == {"finance"}
        engine = PolicyEngine(snapshot)
        engine.replace_policy(POLICY, 1)
        async with open_service(settings, embedder) as svc:
            seen = await surfaces(svc, engine.filter_for(ALICE), company)
            assert seen["sources"] == {"wiki", "hr"} and seen["fetch"] == HR_TITLES


async def test_text_rebuilt_from_chunks_is_rechecked(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    """A document stored without its full text is rebuilt from chunks: each chunk passes the
    re-check, or none of the text is returned (the SQL predicate here lets everything by)."""
    doc = company.id("Incident response")
    with psycopg.connect(company.dsn) as conn:
        conn.execute("UPDATE documents SET content = '' WHERE id = %s", (doc,))
        # The second chunk's copy of the ACL no longer names alice's groups.
        conn.execute(
            "UPDATE chunks SET acl = ARRAY['user:mallory'] WHERE document_id = %s AND ordinal = 1",
            (doc,),
        )
    async with open_service(settings, embedder) as svc:
        leaky = leaky_sql_filter("user:alice", ENG, ALL)
        view = await svc.fetch_document(leaky, str(doc))
        assert "blameless postmortem" not in view.text
        assert view.text == ""
        # Without the tampered chunk the text is rebuilt whole.
        with psycopg.connect(company.dsn) as conn:
            conn.execute("UPDATE chunks SET acl = ARRAY[%s] WHERE document_id = %s", (ENG, doc))
        view = await svc.fetch_document(leaky, str(doc))
        assert view.text.startswith("When production is down") and "postmortem" in view.text


async def test_source_counts_run_in_sql_only_for_exact_filters(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    calls = 0

    def counting(row: RowAttributes) -> bool:
        nonlocal calls
        calls += 1
        return ALL in row.acl

    exact = make_access_filter(
        caller=ALICE,
        policy_version=1,
        where=lambda cols: cols.acl.overlap([ALL]),
        permits=counting,
        exact=True,
    )
    inexact = make_access_filter(
        caller=ALICE, policy_version=1, where=lambda cols: true(), permits=counting
    )
    async with open_service(settings, embedder) as svc:
        in_sql = await svc.list_sources(exact)
        assert calls == 0, "an exact filter's count must not stream rows through the re-check"
        streamed = await svc.list_sources(inexact)
        assert calls > 0
    # The fallback trusts only the re-check: the predicate that lets everything by cannot
    # inflate the counts; both paths agree.
    assert in_sql == streamed
    assert {(s.source, s.documents) for s in in_sql} == {("hr", 1), ("finance", 1)}

    # The engine promises exactness only when every rule of the caller compiled as written.
    clean = PolicyEngine.of(POLICY)
    assert clean.filter_for(ALICE).exact
    broken = PolicyEngine.of(PolicySet.of([*POLICY.rules, AccessRule(ENG, "path:/hr/*/x", "deny")]))
    assert not broken.filter_for(ALICE).exact
    assert broken.filter_for(Caller.of("user:zed", ALL)).exact  # not that caller's rule


async def test_switching_a_source_off_reaches_every_listener_at_once(
    settings: Settings, fresh_database: str, db_target: DatabaseTarget
) -> None:
    """The sources table change notifies: no wait for the next poll (set to a minute)."""
    insert_sources(fresh_database, {"wiki": ("files", ""), "hr": ("files", "")})
    db = Database.open(db_target, settings)
    writer = create_engine(db_target.url)
    engine = PolicyEngine(await PolicyStore(db).load_snapshot(()))
    listener = PolicyListener(engine, PolicyStore(db), db_target.dsn, poll_interval=60)

    def switch(enabled: bool) -> None:  # what `kb sources add --replace` / the API write
        with writer.begin() as conn:
            upsert_source(conn, name="hr", kind="files", config={}, origin="api", enabled=enabled)

    async def until(expected: set[str]) -> None:
        started = time.perf_counter()
        while engine.disabled_sources != expected:
            assert time.perf_counter() - started < 5, "the change never arrived"
            await asyncio.sleep(0.01)

    await listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        await asyncio.to_thread(switch, False)
        await until({"hr"})
        access = engine.filter_for(ALICE)
        assert not access.permits(RowAttributes(str(uuid.uuid4()), "hr", "hr", "/", 0, (ALL,), "t"))
        reloads = engine.reloads
        await asyncio.to_thread(switch, False)  # unchanged: nothing to announce
        await asyncio.to_thread(switch, True)
        await until(set())
        assert engine.reloads == reloads + 1
    finally:
        await listener.stop()
        writer.dispose()
        await db.dispose()
