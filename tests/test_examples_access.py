"""What examples/README.md promises, checked end to end: the sample company ingested through
the real connectors and pipeline, the example policy imported on first open, and the same
questions asked by alice, bob, carol, dave, erin and a stranger."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from policies.identity import Caller
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


@pytest.mark.anyio
async def test_each_user_sees_what_the_examples_readme_says(
    sample_settings: Settings, embedder: Embedder
) -> None:
    assert ingest(sample_settings, embedder) == {"company-docs": 23, "northwind-db": 16}
    async with open_runtime(
        sample_settings, embedder=embedder, run_migrations=False, watch_policies=False
    ) as runtime:
        assert runtime.policies.version >= 1, "policy_file was not imported on first open"
        search = searcher(runtime)

        async def collections(who: tuple[str, ...], text: str) -> set[str]:
            return {c for c, _ in await search(who, text)}

        async def titles(who: tuple[str, ...], text: str) -> list[str]:
            return [t for _, t in await search(who, text)]

        leave = "how many weeks of parental leave"
        assert (await titles(BOB, leave))[0] == "Parental Leave Policy"
        assert "hr" not in await collections(ALICE, leave)
        assert await collections(ALICE, leave) <= {
            "public",
            "engineering",
            "hr-policies",
            "support/tickets",
            "sales",
        }

        deadlock = "traffic deadlock Rotterdam"
        alice = await titles(ALICE, deadlock)
        assert alice[0].startswith("Postmortem 2025-014")
        assert any(t.startswith("Ticket 1001") for t in alice)
        carol = await search(CAROL, deadlock)
        assert ("support/tickets", "Ticket 1001: Robots stop at aisle 14 after map edit") in carol
        assert not any(c == "engineering" for c, _ in carol)
        assert not any(t.startswith("Ticket 1007") for _, t in carol)  # eng, not critical

        price = await search(ALICE, "price of the Heron P3")
        assert price[0] == ("sales", "price-list-2026.csv")
        assert {c for c, _ in price} & {"sales"} and len([c for c, _ in price if c == "sales"]) == 1

        budget = "operating result budget 2026"
        assert (await titles(ERIN, budget))[0] == "Budget 2026"
        assert await collections(DAVE, budget) <= {"public", "hr-policies"}
        assert "public" in await collections(DAVE, budget)
        assert await collections(CAROL, budget) & {"finance", "hr", "engineering"} == set()
        assert await search(MALLORY, budget) == []
        assert "hr" in await collections(("user:admin",), leave)
