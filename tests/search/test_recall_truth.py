"""The recall benchmark's ground truth must not share a bug with the SQL it judges.

bench/_recall_policy.py decides who may read what by evaluating the rules in plain Python;
this test loads a small generated corpus into a real database and checks that, for every
benchmark caller (six predicate shapes at four selectivities), the set of documents and
chunks the production predicate (PolicyEngine -> AccessFilter -> SQL) allows is exactly
the evaluator's, and that the numpy truth matches the production vector branch where the
production path scans exactly.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from sqlalchemy import select

from bench._recall_corpus import CHUNKS_PER_DOC, Corpus, make_corpus
from bench._recall_load import chunk_rows, load
from bench._recall_policy import allowed_documents, make_callers, policy_yaml
from bench._recall_truth import allowed_chunks, exact_top, recall_at_k
from core.identity import Caller
from policies.access import AuthzColumns
from policies.engine import PolicyEngine
from policies.rules import parse_policy_yaml
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.db.models import Chunk, Document
from server.search import SearchFilters, SearchService
from server.settings import Settings

pytestmark = pytest.mark.anyio

DOCS = 2_000  # every 0.1 % bucket holds two documents


@pytest.fixture
def corpus_db(fresh_database: str) -> tuple[str, Corpus]:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(DOCS * CHUNKS_PER_DOC, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    corpus = make_corpus(vectors, rng)
    load(fresh_database, corpus, maintenance_work_mem="64MB")
    return fresh_database, corpus


async def test_evaluator_agrees_with_the_sql_predicate(corpus_db: tuple[str, Corpus]) -> None:
    dsn, corpus = corpus_db
    callers = make_callers()
    engine = PolicyEngine.of(parse_policy_yaml(policy_yaml(callers)), version=1)
    settings = Settings(database={"url": dsn}, home="/tmp/kb-test-recall-home")
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(dsn)), settings)
    ids = chunk_rows(dsn, corpus)
    index = {ident: i for i, ident in enumerate(corpus.ids)}
    partial = 0
    try:
        async with db.sessions() as session:
            for caller in callers:
                access = engine.filter_for(Caller.of(*caller.principals))
                docs = await session.execute(
                    select(Document.id).where(access.where(AuthzColumns.of_documents(Document)))
                )
                in_sql = {index[d] for d in docs.scalars()}
                expected = set(np.flatnonzero(allowed_documents(corpus, caller)).tolist())
                assert in_sql == expected, (caller.shape, caller.level)
                chunks = await session.execute(
                    select(Chunk.id).where(access.where(AuthzColumns.of_chunks(Chunk)))
                )
                rows = allowed_chunks(corpus, caller)
                assert set(chunks.scalars()) == set(ids[rows].tolist()), (
                    caller.shape,
                    caller.level,
                )
                partial += 0 < len(expected) < DOCS
        # Not a comparison of empty sets: most callers see some but not all documents,
        # and the deny of and_not really removes documents its allow covers.
        assert partial >= 18
        and_not = next(c for c in callers if c.shape == "and_not" and c.level == 1)
        allow_only = type(and_not)(and_not.shape, 1, and_not.principals, and_not.rules[:1])
        assert (
            allowed_documents(corpus, allow_only).sum() > allowed_documents(corpus, and_not).sum()
        )
    finally:
        await db.dispose()


async def test_numpy_truth_matches_an_exact_production_scan(corpus_db: tuple[str, Corpus]) -> None:
    dsn, corpus = corpus_db
    callers = [c for c in make_callers() if c.level == 2]  # 1 %: the production path scans exactly
    engine = PolicyEngine.of(parse_policy_yaml(policy_yaml(callers)), version=1)
    settings = Settings(database={"url": dsn}, home="/tmp/kb-test-recall-home")
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(dsn)), settings)
    ids = chunk_rows(dsn, corpus)
    queries = corpus.vectors[:3] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    allowed = [allowed_chunks(corpus, c) for c in callers]
    truth = exact_top(corpus.vectors, queries, allowed)
    service = SearchService(db, None, settings)  # type: ignore[arg-type]
    try:
        for ci, caller in enumerate(callers):
            access = engine.filter_for(Caller.of(*caller.principals))
            assert len(allowed[ci]) >= 10, caller.shape
            for qi, q in enumerate(queries):
                found = await service.vector_search(access, SearchFilters(), q.tolist(), 40)
                top = [c.chunk_id for c in found[:10]]
                assert recall_at_k(top, ids[truth[ci][qi]].tolist()) == 1.0, caller.shape
    finally:
        await db.dispose()


def test_metadata_is_stored_as_an_object(corpus_db: tuple[str, Corpus]) -> None:
    dsn, _ = corpus_db
    with psycopg.connect(dsn) as conn:
        kinds = conn.execute("SELECT DISTINCT jsonb_typeof(doc_metadata) FROM chunks").fetchall()
    assert kinds == [("object",)]
