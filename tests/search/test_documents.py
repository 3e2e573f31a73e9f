"""Fetching, listing, counting and completing documents, per caller."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from core.errors import InvalidRequest, NotFound
from server.embeddings.base import Embedder
from server.search import (
    CHUNK_NOT_FOUND,
    DOCUMENT_NOT_FOUND,
    SearchFilters,
    SearchQuery,
    SearchTuning,
)
from server.settings import Settings
from tests.search.conftest import ALL, ENG, HR, Company
from tests.search.corpus import (
    Doc,
    acl_filter,
    insert_documents,
    insert_sources,
    leaky_sql_filter,
    open_service,
)

pytestmark = pytest.mark.anyio

ALICE = ("user:alice", ENG, ALL)


async def test_fetch_document_and_not_found_read_the_same(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    alice = acl_filter(*ALICE)
    backup = company.id("Database backup")
    async with open_service(settings, embedder) as svc:
        view = await svc.fetch_document(alice, str(backup))
        assert view.summary.title == "Database backup and restore"
        assert view.text.startswith("Nightly backups run pg_dump") and "Point-in-time" in view.text
        assert view.metadata == {"team": "platform", "year": 2025}
        assert not view.truncated and view.total_chars == len(view.text)
        # The kb:// URI works as an id; max_chars truncates and says so.
        short = await svc.fetch_document(alice, f"kb://documents/{backup}", max_chars=20)
        assert short.text == view.text[:20] and short.truncated
        with pytest.raises(InvalidRequest, match="max_chars"):
            await svc.fetch_document(alice, str(backup), max_chars=0)

        denied = str(company.id("Project BLUEBIRD"))
        deleted = str(company.id("Retired VPN"))
        messages = set()
        for ident in (
            denied,
            deleted,
            str(uuid.uuid4()),
            "not-a-uuid",
            "'; DROP TABLE documents; --",
            "",
        ):
            with pytest.raises(NotFound) as exc:
                await svc.fetch_document(alice, ident)
            messages.add(str(exc.value))
        with pytest.raises(NotFound) as exc:
            await svc.fetch_document(leaky_sql_filter(*ALICE), denied)
        messages.add(str(exc.value))
        assert messages == {DOCUMENT_NOT_FOUND}
        assert (await svc.fetch_document(acl_filter("user:bob"), denied)).summary.title.startswith(
            "Project"
        )


async def test_fetch_chunk_with_neighbours(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    alice = acl_filter(*ALICE)
    first, second = company.chunks[company.id("Incident response")]
    async with open_service(settings, embedder) as svc:
        view = await svc.fetch_chunk(alice, second, neighbours=1)
        assert view.chunk.chunk_id == second and "postmortem" in view.chunk.text
        assert [c.chunk_id for c in view.before] == [first] and view.after == ()
        assert view.summary.title == "Incident response runbook"
        alone = await svc.fetch_chunk(alice, str(first), neighbours=0)
        assert alone.before == () and alone.after == ()
        secret = company.chunks[company.id("Project BLUEBIRD")][0]
        messages = set()
        for ident in (secret, 10**12, "abc", -1):
            with pytest.raises(NotFound) as exc:
                await svc.fetch_chunk(alice, ident)
            messages.add(str(exc.value))
        assert messages == {CHUNK_NOT_FOUND}
        with pytest.raises(InvalidRequest, match="neighbours"):
            await svc.fetch_chunk(alice, first, neighbours=50)


async def test_list_sources_counts_only_readable_documents(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    async with open_service(settings, embedder) as svc:
        for access in (acl_filter(*ALICE), leaky_sql_filter(*ALICE)):
            sources = await svc.list_sources(access)
            by_name = {s.source: s for s in sources}
            assert set(by_name) == {"wiki", "hr", "finance"}
            wiki = by_name["wiki"]
            # BLUEBIRD (denied) and the retired guide (deleted) are not counted.
            assert (
                wiki.documents == 3
                and wiki.kind == "files"
                and wiki.description == "Engineering wiki"
            )
            assert {(c.collection, c.documents) for c in wiki.collections} == {
                ("eng", 1),
                ("eng/platform", 2),
            }
            assert by_name["hr"].documents == 1  # only the company-wide leave policy
            assert wiki.uri == "kb://sources/wiki"
        # A caller who can read nothing sees no sources at all, not empty ones.
        assert await svc.list_sources(acl_filter("user:mallory")) == ()
        hr = await svc.list_sources(acl_filter("user:hanna", HR))
        assert [(s.source, s.documents) for s in hr] == [("hr", 2)]


async def test_pagination_returns_every_allowed_document_once(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    rng = np.random.default_rng(7)
    docs = [
        # Same titles on purpose: the cursor must order by (title, id).
        Doc(f"Page {i % 9:02d}", [f"text {i}"], [ENG] if i % 3 else ["user:bob"], id=uuid.uuid4())
        for i in range(40)
    ]
    vectors = [[v / np.linalg.norm(v)] for v in rng.normal(size=(40, 384)).astype(np.float32)]
    insert_documents(fresh_database, docs, vectors=vectors)
    allowed = {d.id for d in docs if d.acl == [ENG]}
    async with open_service(settings, embedder) as svc:
        for access in (acl_filter(*ALICE), leaky_sql_filter(*ALICE)):
            seen: list[uuid.UUID] = []
            cursor = None
            for _ in range(20):
                page = await svc.list_documents(access, cursor=cursor, limit=7)
                assert len(page.items) <= 7
                seen.extend(i.document_id for i in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert cursor is None
            assert len(seen) == len(set(seen)) and set(seen) == allowed
        assert (await svc.list_documents(acl_filter(*ALICE), source="other")).items == ()
        for bad in ("garbage!", "eyJ4Ijog", "W10"):
            with pytest.raises(InvalidRequest, match="invalid cursor"):
                await svc.list_documents(acl_filter(*ALICE), cursor=bad)


async def test_completion_offers_only_readable_documents(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    alice = acl_filter(*ALICE)
    async with open_service(settings, embedder) as svc:
        assert [d.title for d in await svc.complete_documents(alice, "p")] == [
            "Parental leave policy"
        ]
        bob = await svc.complete_documents(acl_filter("user:bob"), "pro")
        assert [d.title for d in bob] == ["Project BLUEBIRD acquisition plan"]
        assert await svc.complete_documents(alice, "pro") == ()
        assert await svc.complete_documents(leaky_sql_filter(*ALICE), "pro") == ()
        backup = company.id("Database backup")
        by_id = await svc.complete_documents(alice, str(backup)[:8])
        assert [d.document_id for d in by_id] == [backup]
        secret = str(company.id("Project BLUEBIRD"))
        assert await svc.complete_documents(alice, secret[:8]) == ()
        assert await svc.complete_documents(alice, "%") == ()
        assert len(await svc.complete_documents(alice, "", limit=2)) == 2


@pytest.mark.parametrize(
    "tuning", [SearchTuning(), SearchTuning(exact_scan_below=0)], ids=["exact", "hnsw"]
)
async def test_top_k_is_filled_with_allowed_rows_under_a_restrictive_filter(
    fresh_database: str, settings: Settings, embedder: Embedder, tuning: SearchTuning
) -> None:
    """300 denied chunks sit right on the query; 15 allowed ones are far away. A search that
    took top-k first and filtered afterwards would return nothing."""
    insert_sources(fresh_database, {"wiki": ("files", "")})
    query = "kubernetes deployment rollout"
    near = embedder.embed_query(query)
    rng = np.random.default_rng(3)
    denied = [Doc(f"Denied {i}", [f"secret note {i}"], ["user:bob"]) for i in range(300)]
    allowed = [Doc(f"Allowed {i}", [f"ordinary note {i}"], [ENG]) for i in range(15)]

    def jitter(v: np.ndarray, scale: float) -> list[np.ndarray]:
        w = v + rng.normal(scale=scale, size=v.shape).astype(np.float32)
        return [w / np.linalg.norm(w)]

    vectors = [jitter(near, 0.01) for _ in denied] + [jitter(-near, 0.5) for _ in allowed]
    insert_documents(fresh_database, denied + allowed, vectors=vectors)
    async with open_service(settings, embedder, tuning) as svc:
        result = await svc.search(acl_filter(*ALICE), SearchQuery(query, top_k=10))
        assert len(result.hits) == 10
        assert all(h.title.startswith("Allowed") for h in result.hits)
        candidates = await svc.vector_search(acl_filter(*ALICE), SearchFilters(), near.tolist(), 40)
        assert len(candidates) == 15
