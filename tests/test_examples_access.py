"""What examples/README.md promises, checked end to end: the sample company ingested through
the real connectors and pipeline, the example policy imported on first open, and the same
questions asked by alice, bob, carol, dave, erin and a stranger."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from core.identity import Caller
from server.db.engine import DatabaseTarget, make_sync_engine, to_sqlalchemy_url
from server.embeddings.base import Embedder
from server.ingest.service import run_sync
from server.runtime import Runtime, open_runtime
from server.search import SearchQuery, SearchService
from server.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent

ALICE = ("user:alice", "group:eng")
BOB = ("user:bob", "group:hr")
CAROL = ("user:carol", "group:sales")
DAVE = ("user:dave",)
ERIN = ("user:erin", "group:finance")
MALLORY = ("user:mallory",)


@pytest.fixture
def sample_settings(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for key in list(os.environ):
        if key.startswith("KB_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    return load_settings(
        ROOT / "examples" / "kb.yaml",
        home=str(tmp_path / "home"),
        database={"url": fresh_database},
    )


def ingest(settings: Settings, embedder: Embedder) -> dict[str, int]:
    assert settings.database.url is not None
    target = DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))
    engine = make_sync_engine(target, settings)
    try:
        added = {}
        for source in settings.sources:
            result = run_sync(settings, engine, embedder, source.name)
            assert result.status == "succeeded", result.error
            assert result.counts.docs_failed == 0
            added[source.name] = result.counts.docs_added
        return added
    finally:
        engine.dispose()


Hits = list[tuple[str, str]]  # (collection, title) in rank order


def searcher(runtime: Runtime) -> Callable[[tuple[str, ...], str], Awaitable[Hits]]:
    service = SearchService(runtime.db, runtime.require_embedder(), runtime.settings)

    async def search(principals: tuple[str, ...], text: str) -> Hits:
        access = runtime.policies.filter_for(Caller.of(*principals, transport="cli"))
        result = await service.search(access, SearchQuery(text, top_k=20))
        return [(hit.collection, hit.title) for hit in result.hits]

    return search


# Readable documents per collection, as the "Who sees what" table of examples/README.md says.
EXPECTED = {
    ALICE: {"public": 4, "engineering": 6, "sales": 1, "support/tickets": 3, "hr-policies": 3},
    BOB: {"public": 4, "hr": 4, "hr-policies": 6},
    CAROL: {"public": 4, "sales": 5, "support/tickets": 5, "hr-policies": 3},
    DAVE: {"public": 4, "hr-policies": 3},
    ERIN: {"public": 4, "finance": 4, "hr-policies": 3},
    MALLORY: {},
    ("user:admin",): {
        "public": 4,
        "engineering": 6,
        "hr": 4,
        "sales": 5,
        "finance": 4,
        "support/tickets": 10,
        "hr-policies": 6,
    },
}


def document_collections(database_uri: str) -> dict[str, tuple[str, str]]:
    """document id -> (collection, external id) of every live document."""
    with psycopg.connect(database_uri) as conn:
        rows = conn.execute(
            "SELECT id::text, collection, external_id FROM documents WHERE deleted_at IS NULL"
        ).fetchall()
    return {doc_id: (collection, external_id) for doc_id, collection, external_id in rows}


@pytest.mark.anyio
async def test_each_user_sees_what_the_examples_readme_says(
    sample_settings: Settings, embedder: Embedder, fresh_database: str
) -> None:
    assert ingest(sample_settings, embedder) == {"company-docs": 23, "northwind-db": 16}
    documents = document_collections(fresh_database)
    async with open_runtime(
        sample_settings, embedder=embedder, run_migrations=False, watch_policies=False
    ) as runtime:
        assert runtime.policies.version >= 1, "policy_file was not imported on first open"

        for principals, expected in EXPECTED.items():
            access = runtime.policies.filter_for(Caller.of(*principals, transport="cli"))
            readable = await runtime.policy_store.readable_document_ids(access)
            counts: dict[str, int] = {}
            for doc_id in readable:
                collection = documents[str(doc_id)][0]
                counts[collection] = counts.get(collection, 0) + 1
            assert counts == expected, principals
        alice = runtime.policies.filter_for(Caller.of(*ALICE, transport="cli"))
        alice_sales = {
            documents[str(d)][1]
            for d in await runtime.policy_store.readable_document_ids(alice)
            if documents[str(d)][0] == "sales"
        }
        assert alice_sales == {"sales/price-list-2026.csv"}

        # The searches examples/README.md suggests, and what they find.
        search = searcher(runtime)

        async def titles(who: tuple[str, ...], text: str) -> list[str]:
            return [t for _, t in await search(who, text)]

        leave = "how many weeks of parental leave"
        assert (await titles(BOB, leave))[0] == "Parental Leave Policy"
        assert "hr" not in {c for c, _ in await search(ALICE, leave)}

        deadlock = "traffic deadlock Rotterdam"
        alice_hits = await titles(ALICE, deadlock)
        assert alice_hits[0].startswith("Postmortem 2025-014")
        assert any(t.startswith("Ticket 1001") for t in alice_hits)
        carol_hits = await titles(CAROL, deadlock)
        assert carol_hits[0].startswith("Ticket 1001")
        assert not any(t.startswith("Postmortem") for t in carol_hits)

        price = await search(ALICE, "price of the Heron P3")
        assert price[0] == ("sales", "price-list-2026.csv")

        budget = "operating result budget 2026"
        assert (await titles(ERIN, budget))[0] == "Budget 2026"
        assert {c for c, _ in await search(DAVE, budget)} <= {"public", "hr-policies"}
        assert await search(MALLORY, budget) == []
