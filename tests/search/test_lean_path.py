"""The lean query path: how the vector branch picks its plan, what stays prepared, and the
query embedding computed once. Real Postgres with pgvector, the real model, real callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import event, text

from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.embeddings.base import AsyncEmbedder, Embedder, Vectors
from server.search import SearchFilters, SearchQuery, SearchTuning
from server.search.query_syntax import parse_query
from server.search.service import (
    ScopeSizes,
    SearchService,
    exact_scan_threshold,
    scaled_ef_search,
)
from server.settings import Settings
from tests.search.conftest import ALL, ENG, HR, Company
from tests.search.corpus import acl_filter, leaky_sql_filter, open_service

pytestmark = pytest.mark.anyio

HR_ONLY = ("user:hanna", HR)  # payroll and parental leave: two chunks
ALICE = ("user:alice", ENG, ALL)  # the engineering documents and the shared ones
LIMIT = 40


def chunk_ids(company: Company, *titles: str) -> set[int]:
    return {c for t in titles for c in company.chunks[company.id(t)]}


@asynccontextmanager
async def service_on_own_pool(
    settings: Settings, embedder: Embedder
) -> AsyncIterator[tuple[SearchService, Database]]:
    """A service on an engine of its own, with the pool ``settings`` give (tests that look
    at connections)."""
    assert settings.database.url is not None
    db = Database.open(
        DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value())), settings
    )
    model = AsyncEmbedder(embedder)
    try:
        yield SearchService(db, model, settings), db
    finally:
        model.close()
        await db.dispose()


async def test_a_restrictive_caller_gets_exactly_its_rows_when_hnsw_comes_back_short(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    # exact_scan_below=0: the plan is always an HNSW walk first. Two allowed chunks cannot
    # fill 40 candidates, so the branch must redo the query as an exact scan.
    vector = embedder.embed_query("when is salary paid").tolist()
    async with open_service(settings, embedder, SearchTuning(exact_scan_below=0)) as svc:
        branch = await svc.vector_branch(acl_filter(*HR_ONLY), SearchFilters(), vector, LIMIT)
        leaky = await svc.search(leaky_sql_filter(*HR_ONLY), SearchQuery("salary", top_k=10))
    assert branch.plan == "hnsw-then-exact"
    allowed = chunk_ids(company, "Quarterly payroll", "Parental leave")
    assert {c.chunk_id for c in branch.candidates} == allowed
    # A predicate that lets everything through is still cut down by the re-check.
    assert {h.document_id for h in leaky.hits} <= {
        company.id("Quarterly payroll"),
        company.id("Parental leave"),
    }


async def test_the_scope_answer_belongs_to_one_caller_and_only_chooses_the_plan(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    vector = embedder.embed_query("how do we restore a database backup").tolist()
    hr, alice = acl_filter(*HR_ONLY), acl_filter(*ALICE)
    fixed = SearchTuning(exact_scan_below=3, exact_scan_reference_chunks=None)
    async with open_service(settings, embedder, fixed) as svc:
        small = await svc.vector_branch(hr, SearchFilters(), vector, LIMIT)
        # HR's "small" answer is cached; alice (eight chunks) must be counted on her own.
        large = await svc.vector_branch(alice, SearchFilters(), vector, LIMIT)
        assert (small.plan, large.plan) == ("exact", "hnsw-then-exact")
        assert svc.scope_sizes.get(ScopeSizes.key(hr, SearchFilters())) is True
        assert svc.scope_sizes.get(ScopeSizes.key(alice, SearchFilters())) is False
        # A wrong cached answer changes the plan, never the rows.
        svc.scope_sizes.put(ScopeSizes.key(alice, SearchFilters()), True)
        stale = await svc.vector_branch(alice, SearchFilters(), vector, LIMIT)
    assert stale.plan == "exact"
    assert {c.chunk_id for c in stale.candidates} == {c.chunk_id for c in large.candidates}
    forbidden = chunk_ids(company, "Project BLUEBIRD", "Quarterly payroll")
    assert not forbidden & {c.chunk_id for c in large.candidates}
    assert {c.chunk_id for c in small.candidates} == chunk_ids(
        company, "Quarterly payroll", "Parental leave"
    )


async def test_caller_dependent_statements_are_never_prepared_and_by_id_ones_are(
    company: Company, make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    # One pooled connection, so every statement below runs on the same backend.
    settings = make_settings(database={"pool_size": 1, "max_overflow": 0})
    alice = acl_filter(*ALICE)
    async with service_on_own_pool(settings, embedder) as (svc, db):
        # psycopg prepares a statement from its 5th execution, and forgets them all at a
        # rollback: search transactions commit.
        for i in range(8):
            found = await svc.search(alice, SearchQuery(f"incident runbook {i}", mode="semantic"))
            assert found.hits
        async with db.sessions() as session:
            prepared = list(
                (await session.execute(text("SELECT statement FROM pg_prepared_statements")))
                .scalars()
                .all()
            )
            scan = {
                name: (await session.execute(text(f"SHOW {name}"))).scalar_one()
                for name in ("hnsw.iterative_scan", "hnsw.ef_search", "plan_cache_mode")
            }
        corpus = svc._corpus[0]  # the estimate the walk's width was scaled by
    assert not [s for s in prepared if "<=>" in s], prepared
    # The hydration by id: the same plan for everyone, so worth preparing.
    assert [s for s in prepared if "JOIN documents" in s and "chunks.id = any(" in s], prepared
    # The walk settings are the connection's own, set once; nothing else is changed.
    assert scan == {
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.ef_search": str(scaled_ef_search(svc.tuning, corpus)),
        "plan_cache_mode": "auto",
    }


class Counting:
    """The real embedder, counting the queries that reach the model."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.queries = 0
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.max_tokens = inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        self.queries += 1
        return self.inner.embed_query(text)


class WideRecording(Counting):
    """:class:`Counting` with a wide query path that records which path each query took."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.paths: list[str] = []

    def embed_query(self, text: str) -> Vectors:
        self.paths.append("narrow")
        return super().embed_query(text)

    def embed_query_wide(self, text: str) -> Vectors:
        self.paths.append("wide")
        return super().embed_query(text)


async def test_the_wide_query_path_is_asked_for_only_where_the_embedder_has_one(
    embedder: Embedder,
) -> None:
    wide, plain = WideRecording(embedder), Counting(embedder)
    with_wide, without = AsyncEmbedder(wide), AsyncEmbedder(plain)
    try:
        await with_wide.embed_query("parental leave", wide=True)
        await with_wide.embed_query("parental leave")
        vector = await without.embed_query("parental leave", wide=True)
    finally:
        with_wide.close()
        without.close()
    assert wide.paths == ["wide", "narrow"]
    assert plain.queries == 1  # no wide path: the plain one, same vector
    np.testing.assert_allclose(vector, embedder.embed_query("parental leave"))


async def test_a_search_alone_on_a_small_corpus_embeds_wide_and_concurrent_ones_do_not(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    alice = acl_filter(*ALICE)
    model = WideRecording(embedder)
    assert settings.database.url is not None
    db = Database.open(
        DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value())), settings
    )
    wrapper = AsyncEmbedder(model)
    svc = SearchService(db, wrapper, settings)
    with psycopg.connect(company.dsn, autocommit=True) as conn:
        conn.execute("ANALYZE chunks")  # the planner's estimate of the corpus: known
    try:
        query = SearchQuery("incident runbook restore", mode="hybrid")
        first = await svc.search(alice, query)  # the corpus size is not read yet: narrow
        alone = await svc.search(alice, query)
        together = await asyncio.gather(svc.search(alice, query), svc.search(alice, query))
        big = SearchService(db, wrapper, settings, SearchTuning(wide_query_below_chunks=1))
        await big.search(alice, query)
        await big.search(alice, query)  # alone, but the corpus is past the threshold
        # No keyword leg beside it: a semantic search alone is wide whatever the corpus.
        await big.search(alice, SearchQuery("incident runbook restore", mode="semantic"))
    finally:
        wrapper.close()
        await db.dispose()
    # Alone on a corpus known to be small: wide. Two at once: the first started alone and
    # may use both cores; the second found it under way and stays on one. Past the bound,
    # a hybrid search stays narrow, a semantic one (no keyword leg) does not.
    assert model.paths == ["narrow", "wide", "wide", "narrow", "narrow", "narrow", "wide"]
    assert first.hits == alone.hits == together[0].hits == together[1].hits


async def test_the_same_query_arriving_together_is_embedded_once(embedder: Embedder) -> None:
    model = Counting(embedder)
    wrapper = AsyncEmbedder(model, query_threads=2, cache_size=16)
    try:
        vectors = await asyncio.gather(
            *(wrapper.embed_query("parental leave policy") for _ in range(8))
        )
        other = await wrapper.embed_query("travel expenses")
    finally:
        wrapper.close()
    assert model.queries == 2
    assert all(v is vectors[0] for v in vectors)
    np.testing.assert_allclose(vectors[0], embedder.embed_query("parental leave policy"))
    assert not np.allclose(other, vectors[0])


async def test_a_cancelled_first_caller_does_not_fail_the_ones_waiting(
    embedder: Embedder,
) -> None:
    model = Counting(embedder)
    wrapper = AsyncEmbedder(model, cache_size=16)
    try:
        first = asyncio.ensure_future(wrapper.embed_query("backup retention"))
        await asyncio.sleep(0)  # first is now computing
        second = asyncio.ensure_future(wrapper.embed_query("backup retention"))
        await asyncio.sleep(0)  # second is waiting for first
        first.cancel()
        vector: Any = await second
    finally:
        wrapper.close()
    assert first.cancelled()
    np.testing.assert_allclose(vector, embedder.embed_query("backup retention"))


async def test_hydration_rechecks_in_rank_order_and_returns_only_what_it_keeps(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    from server.search import repository as repo

    # The SQL predicate of this filter lets everything through; only the re-check is right.
    hr = leaky_sql_filter(*HR_ONLY)
    secret = company.chunks[company.id("Project BLUEBIRD")]
    payroll = company.chunks[company.id("Quarterly payroll")]
    parental = company.chunks[company.id("Parental leave")]
    ranked = [*secret, *payroll, *parental]
    async with open_service(settings, embedder) as svc, svc._db.sessions() as session:
        one = await repo.load_chunks(session, hr, ranked, keep=1)
        every = await repo.load_chunks(session, hr, ranked)
    assert list(one) == payroll[:1]  # the denied rows ranked first are skipped, not kept
    assert set(every) == {*payroll, *parental}


def test_the_exact_scan_threshold_grows_with_the_square_root_of_the_corpus() -> None:
    tuning = SearchTuning(exact_scan_below=20_000, exact_scan_reference_chunks=1_000_000)
    assert exact_scan_threshold(tuning, 1_000_000) == 20_000
    assert exact_scan_threshold(tuning, 4_000_000) == 40_000
    assert 6_300 <= exact_scan_threshold(tuning, 100_000) <= 6_330
    # Never analysed (no estimate yet), or a fixed threshold asked for: as configured.
    assert exact_scan_threshold(tuning, None) == 20_000
    assert exact_scan_threshold(tuning, -1) == 20_000
    fixed = SearchTuning(exact_scan_below=3, exact_scan_reference_chunks=None)
    assert exact_scan_threshold(fixed, 1_000_000) == 3
    # 0 still means "always walk HNSW first", whatever the corpus.
    assert exact_scan_threshold(SearchTuning(exact_scan_below=0), 50_000) == 0


def test_the_hnsw_beam_narrows_with_the_square_root_of_a_smaller_corpus() -> None:
    tuning = SearchTuning(ef_search=800, ef_search_reference_chunks=1_000_000, min_ef_search=100)
    assert SearchTuning().ef_search == 1000  # pgvector's widest, at a million chunks
    assert scaled_ef_search(tuning, 1_000_000) == 800
    assert scaled_ef_search(tuning, 4_000_000) == 800  # never wider than configured
    assert 250 <= scaled_ef_search(tuning, 100_000) <= 256
    assert scaled_ef_search(tuning, 1_000) == 100  # never below the floor
    # Never analysed (no estimate yet), or scaling turned off: the full width.
    assert scaled_ef_search(tuning, None) == 800
    assert scaled_ef_search(tuning, -1) == 800
    fixed = SearchTuning(ef_search=400, ef_search_reference_chunks=None)
    assert scaled_ef_search(fixed, 10_000) == 400
    # A floor above the configured width does not widen it (pgvector-defaults: 40).
    assert scaled_ef_search(SearchTuning(ef_search=40), 10_000) == 40
    # pgvector refuses a wider beam at the first search: refused when configured.
    with pytest.raises(ValueError, match="1..1000"):
        SearchTuning(ef_search=1200)


async def test_a_hybrid_search_takes_one_connection_and_leaves_its_settings_as_found(
    company: Company, make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    # Both legs and the hydration share one pooled connection: under load a search that
    # held one connection while taking a second made the pool open and close extra ones.
    settings = make_settings(database={"pool_size": 2, "max_overflow": 0})
    alice = acl_filter(*ALICE)
    checkouts: list[object] = []
    async with service_on_own_pool(settings, embedder) as (svc, db):
        event.listen(db.engine.sync_engine.pool, "checkout", lambda *a: checkouts.append(a[0]))
        found = await svc.search(alice, SearchQuery("incident runbook restore", mode="hybrid"))
        searched = len(checkouts)
        async with db.sessions() as session, session.begin():
            configured = (
                await session.execute(text("SHOW max_parallel_workers_per_gather"))
            ).scalar_one()
            lexical, _ = await svc._keyword_in(
                session, alice, SearchFilters(), parse_query("incident runbook"), LIMIT
            )
            # The keyword leg turns parallel workers off for its scoring statement only:
            # the vector leg that follows in the same transaction plans as configured.
            after = (
                await session.execute(text("SHOW max_parallel_workers_per_gather"))
            ).scalar_one()
    assert found.hits and lexical
    assert searched == 1
    assert after == configured
