"""The leak oracle: random corpora, policies and callers; SQL filter vs plain Casbin.

For each example: documents with random attributes and ACLs (and chunks with random unit
vectors) go into one shared database (truncated between examples); a random policy
(allows, denies, conditions, clearance, role and collection hierarchies, sometimes rules
that cannot be compiled) and a random caller are drawn. The oracle is ``enforce()`` on an
enforcer holding the full model and every rule, called for every document. Checked:

* the SQL predicate and the per-row re-check agree exactly;
* no returned document or chunk is one the oracle denies;
* for policies that compile fully: exactly the oracle's documents, and exactly the
  oracle's top-k chunks (exact scan and HNSW with iterative scan);
* ``explain`` agrees with what the filter returns;
* the search service (``server/search``) through the same filter: ``vector_search``
  returns exactly the allowed top-k, hybrid ``search`` hits, ``fetch_document``,
  ``list_documents`` and ``list_sources`` counts show exactly the allowed documents, and a
  denied document reads as not found.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, insert, select, text

from core.errors import NotFound
from core.identity import Caller
from policies.access import AccessFilter, AuthzColumns, RowAttributes
from policies.enforcer import build_enforcer, enforce
from policies.engine import PolicyEngine
from policies.explain import explain
from policies.rules import AccessRule, CollectionLink, PolicySet, RoleLink
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.db.models import Chunk, Document, Source
from server.embeddings import AsyncEmbedder, Embedder
from server.search.schemas import SearchFilters, SearchQuery
from server.search.service import SearchService
from server.settings import Settings

DIM = 384
SOURCES = ["s1", "s2", "s3"]
PRINCIPALS = [
    "user:alice",
    "user:bob",
    "user:carol",
    "group:eng",
    "group:hr",
    "email:a@x.io",
    "svc:bot",
]
ROLES = ["role:r1", "role:r2", "role:r3", "role:admin"]
# LIKE metacharacters and the escape character on purpose.
COLLECTIONS = [
    "eng",
    "eng/team-a",
    "eng/team-a/x",
    "eng/b",
    "hr",
    "hr/pay",
    "h%",
    "h%/a",
    "h_",
    "hx",
    "a\\b",
    "a/b",
]
PATHS = [
    "/hr/x/payroll",
    "/hr/x/salary",
    "/hr_/a",
    "/h%/b",
    "/eng/a.md",
    "/eng/b/c.md",
    "/",
    "",
    "/HR/x",
]
PATH_PREFIXES = ["/hr/", "/hr", "/h%", "/hr_/", "/eng/", "/", "/eng/b/c.md", "/HR/", "/h_"]
CONTENT_TYPES = ["text/plain", "application/pdf", "text/markdown"]
DOC_IDS = [str(uuid.UUID(int=0xD0C0000 + i)) for i in range(12)]
BROKEN_OBJECTS = ["bogus:x", "collection:/bad", "path:/hr/*/salary", "doc:not-a-uuid", "acl:other"]
BROKEN_CONDITIONS = ['metadata.team > "a"', 'title == "x"', 'level <= "2"', 'metadata.a.b == "x"']

WORDS = ["alpha", "bravo", "charlie", "delta"]

meta_values = st.sampled_from(["a", "b", "c", ["a"], 1, True, None])


@st.composite
def documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=len(DOC_IDS)))
    docs = []
    for i in range(n):
        metadata = {}
        for key in ("team", "region"):
            if draw(st.booleans()):
                metadata[key] = draw(meta_values)
        docs.append(
            {
                "id": uuid.UUID(DOC_IDS[i]),
                "source": draw(st.sampled_from(SOURCES)),
                "external_id": f"e{i}",
                "uri": f"kb://{i}",
                "title": f"doc {i}",
                "content_type": draw(st.sampled_from(CONTENT_TYPES)),
                "content_hash": "h",
                "collection": draw(st.sampled_from(COLLECTIONS)),
                "path": draw(st.sampled_from(PATHS)),
                "level": draw(st.integers(0, 4)),
                "acl": sorted(draw(st.sets(st.sampled_from(PRINCIPALS + ROLES[:2]), max_size=3))),
                "metadata_": metadata,
                "chunks": draw(st.integers(1, 3)),
            }
        )
    return docs


def _clause(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return f'content_type == "{draw(st.sampled_from(CONTENT_TYPES))}"'
    if kind == 1:
        return f'content_type != "{draw(st.sampled_from(CONTENT_TYPES))}"'
    if kind == 2:
        key = draw(st.sampled_from(["team", "region"]))
        op = draw(st.sampled_from(["==", "!="]))
        return f'metadata.{key} {op} "{draw(st.sampled_from(["a", "b", "c"]))}"'
    if kind == 3:
        values = draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True))
        return "metadata.team in [" + ", ".join(f'"{v}"' for v in values) + "]"
    if kind == 4:
        return f"level {draw(st.sampled_from(['<=', '>=', '==']))} {draw(st.integers(0, 4))}"
    if kind == 5:
        values = draw(st.lists(st.sampled_from(CONTENT_TYPES), min_size=1, max_size=2, unique=True))
        return "content_type in [" + ", ".join(f'"{v}"' for v in values) + "]"
    return draw(st.sampled_from(BROKEN_CONDITIONS))


@st.composite
def rules(draw: st.DrawFn, broken: bool, caller: list[str]) -> AccessRule:
    kind = draw(st.integers(0, 7 if broken else 6))
    if kind == 0:
        obj = "*"
    elif kind == 1:
        obj = "acl:source"
    elif kind == 2:
        obj = "collection:" + draw(st.sampled_from([*COLLECTIONS, "sales", "eng/team"]))
    elif kind == 3:
        obj = "path:" + draw(st.sampled_from(PATH_PREFIXES))
    elif kind == 4:
        obj = "source:" + draw(st.sampled_from(SOURCES))
    elif kind == 5:
        obj = "doc:" + draw(st.sampled_from(DOC_IDS))
    elif kind == 6:
        obj = "acl:source" if draw(st.booleans()) else "collection:eng"
    else:
        obj = draw(st.sampled_from(BROKEN_OBJECTS))
    effect = draw(st.sampled_from(["allow", "allow", "allow", "deny"]))
    max_level = draw(st.none() | st.integers(0, 4)) if effect == "allow" or broken else None
    clauses = [_clause(draw) for _ in range(draw(st.sampled_from([0, 0, 1, 2])))]
    if not broken:
        clauses = [c for c in clauses if c not in BROKEN_CONDITIONS]
    # Half the rules name one of the caller's principals, so most examples grant something.
    pool = caller if draw(st.booleans()) else PRINCIPALS + ROLES[:3]
    subject = draw(st.sampled_from(pool))
    return AccessRule(subject, obj, effect, max_level, " && ".join(clauses))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PolicySet, frozenset[str], list[str]]:
    """A caller, and a policy (a quarter of them with rules that cannot be compiled)."""
    caller = draw(
        st.lists(st.sampled_from([*PRINCIPALS, "role:r1"]), min_size=1, max_size=3, unique=True)
    )
    broken = draw(st.integers(0, 3)) == 0
    items: list[Any] = draw(st.lists(rules(broken, caller), min_size=1, max_size=8))
    for _ in range(draw(st.integers(0, 5))):
        member = draw(st.sampled_from(PRINCIPALS + ROLES[:3]))
        role = draw(
            st.sampled_from(ROLES[:3] + (["role:admin"] if draw(st.integers(0, 9)) == 0 else []))
        )
        items.append(RoleLink(member, role))
    for _ in range(draw(st.integers(0, 3))):
        child = draw(st.sampled_from([*COLLECTIONS, "sales"]))
        parent = draw(st.sampled_from([*COLLECTIONS, "sales"]))
        items.append(CollectionLink(child, parent))
    admins = (
        frozenset(draw(st.sets(st.sampled_from(PRINCIPALS), max_size=1)))
        if draw(st.integers(0, 9)) == 0
        else frozenset()
    )
    return PolicySet.of(items), admins, caller


@dataclass
class Corpus:
    docs: list[dict[str, Any]]
    chunk_ids: list[int]
    chunk_doc: dict[int, str]
    vectors: dict[int, np.ndarray]


def _load(conn: Connection, docs: list[dict[str, Any]], seed: int) -> Corpus:
    conn.execute(text("TRUNCATE chunks, documents"))
    rng = np.random.default_rng(seed)
    # Core inserts take column names: the model's ``metadata_`` attribute is column "metadata".
    doc_rows = [
        {("metadata" if k == "metadata_" else k): v for k, v in d.items() if k != "chunks"}
        for d in docs
    ]
    conn.execute(insert(Document.__table__), doc_rows)
    rows = []
    for d in docs:
        for ordinal in range(d["chunks"]):
            vec = rng.standard_normal(DIM).astype(np.float32)
            vec /= np.linalg.norm(vec)
            rows.append(
                {
                    "document_id": d["id"],
                    "ordinal": ordinal,
                    "text": f"chunk {ordinal} {WORDS[(ordinal + len(rows)) % len(WORDS)]}",
                    "embedding": vec,
                    "source": d["source"],
                    "collection": d["collection"],
                    "path": d["path"],
                    "level": d["level"],
                    "acl": d["acl"],
                    "content_type": d["content_type"],
                    "doc_metadata": d["metadata_"],
                }
            )
    ids = list(
        conn.execute(
            insert(Chunk.__table__).returning(
                Chunk.id, Chunk.document_id, sort_by_parameter_order=True
            ),
            rows,
        ).all()
    )
    conn.commit()
    vectors = {cid: r["embedding"] for (cid, _), r in zip(ids, rows, strict=True)}
    return Corpus(docs, [cid for cid, _ in ids], {cid: str(did) for cid, did in ids}, vectors)


def attrs(d: dict[str, Any]) -> RowAttributes:
    return RowAttributes(
        document_id=str(d["id"]),
        source=d["source"],
        collection=d["collection"],
        path=d["path"],
        level=d["level"],
        acl=tuple(d["acl"]),
        content_type=d["content_type"],
        metadata=d["metadata_"],
    )


def _chunk_query(conn: Connection, access: AccessFilter, q: np.ndarray, k: int) -> list[int]:
    cols = AuthzColumns.of_chunks(Chunk)
    stmt = (
        select(Chunk.id)
        .where(access.where(cols))
        .order_by(Chunk.embedding.cosine_distance(q))
        .limit(k)
    )
    return list(conn.execute(stmt).scalars())


def _distances(corpus: Corpus, ids: list[int], q: np.ndarray) -> np.ndarray:
    return np.sort(np.array([1.0 - float(np.dot(corpus.vectors[i], q)) for i in ids]))


@pytest.fixture(scope="module")
def prepared(sync_engine: Engine) -> Engine:
    with sync_engine.begin() as conn:
        conn.execute(insert(Source), [{"name": s, "kind": "files"} for s in SOURCES])
        # Thousands of tiny commits: durability is irrelevant in a throwaway database.
        db = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f'ALTER DATABASE "{db}" SET synchronous_commit = off'))
    sync_engine.dispose()
    return sync_engine


@dataclass
class Services:
    loop: asyncio.AbstractEventLoop
    search: SearchService


@pytest.fixture(scope="module")
def services(
    prepared: Engine,
    module_database: str,
    embedder: Embedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Services]:
    """The real search service on the shared database, driven from one event loop."""
    settings = Settings(
        home=str(tmp_path_factory.mktemp("home")), database={"url": module_database}
    )
    loop = asyncio.new_event_loop()
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(module_database)), settings)
    async_embedder = AsyncEmbedder(embedder)
    try:
        yield Services(loop, SearchService(db, async_embedder, settings))
    finally:
        async_embedder.close()
        loop.run_until_complete(db.dispose())
        loop.close()


EXAMPLES = int(os.environ.get("KB_LEAK_ORACLE_EXAMPLES", "1000"))
SERVICE_EVERY = 10


def test_filter_never_leaks_and_matches_the_oracle(prepared: Engine, services: Services) -> None:
    stats = {"n": 0, "compilable": 0, "allowed": 0, "service": 0}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        docs=documents(),
        scenario=scenarios(),
        seed=st.integers(0, 2**32 - 1),
        k=st.integers(1, 8),
    )
    def check(
        docs: list[dict[str, Any]],
        scenario: tuple[PolicySet, frozenset[str], list[str]],
        seed: int,
        k: int,
    ) -> None:
        # The service path costs several round trips: every SERVICE_EVERY-th example.
        with_service = stats["n"] % SERVICE_EVERY == 0
        compilable, allowed = check_one(prepared, services, docs, scenario, seed, k, with_service)
        stats["service"] += with_service
        stats["n"] += 1
        stats["compilable"] += compilable
        stats["allowed"] += allowed

    check()
    assert stats["n"] >= EXAMPLES
    assert stats["compilable"] >= EXAMPLES // 2
    assert stats["allowed"] >= EXAMPLES // 4
    assert stats["service"] >= EXAMPLES // SERVICE_EVERY


def check_one(
    prepared: Engine,
    services: Services,
    docs: list[dict[str, Any]],
    scenario: tuple[PolicySet, frozenset[str], list[str]],
    seed: int,
    k: int,
    with_service: bool,
) -> tuple[bool, bool]:
    policy_set, admins, principals = scenario
    engine = PolicyEngine.of(policy_set, version=1, admin_principals=admins)
    access = engine.filter_for(Caller.of(*principals))
    compilable = not engine.snapshot.problems
    oracle_enforcer = build_enforcer(
        [
            [r.subject, r.object, r.effect, "" if r.max_level is None else str(r.max_level), r.when]
            for r in policy_set.rules
        ],
        roles=[(g.member, g.role) for g in policy_set.roles],
        collections=[(c.child, c.parent) for c in policy_set.collections],
        admin_principals=admins,
    )
    oracle = {str(d["id"]) for d in docs if enforce(oracle_enforcer, principals, attrs(d))}

    with prepared.connect() as conn:
        corpus = _load(conn, docs, seed)
        stmt = select(Document.id).where(access.where(AuthzColumns.of_documents(Document)))
        via_sql = {str(i) for i in conn.execute(stmt).scalars()}
        rechecked = {str(d["id"]) for d in docs if access.permits(attrs(d))}
        assert via_sql == rechecked, "the SQL predicate and the Casbin re-check disagree"
        assert via_sql <= oracle, f"leak: {sorted(via_sql - oracle)}"
        if compilable:
            assert via_sql == oracle

        for d in docs:
            assert explain(engine.snapshot, principals, attrs(d)).allowed == (
                str(d["id"]) in via_sql
            )

        q = np.random.default_rng(seed + 1).standard_normal(DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        allowed_chunks = [c for c in corpus.chunk_ids if corpus.chunk_doc[c] in via_sql]
        expected = _distances(corpus, allowed_chunks, q)[:k]

        conn.commit()
        with conn.begin():
            conn.execute(text("SET LOCAL enable_indexscan = off"))  # exact scan
            exact = _chunk_query(conn, access, q, k)
        with conn.begin():
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # force the HNSW index
            conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            approx = _chunk_query(conn, access, q, k)
    for found in (exact, approx):
        assert {corpus.chunk_doc[c] for c in found} <= oracle, "leak in top-k"
        assert {corpus.chunk_doc[c] for c in found} <= via_sql
        # Top-k among the allowed rows: nothing lost to authorization.
        assert np.allclose(_distances(corpus, found, q), expected, atol=1e-5)
    if with_service:
        services.loop.run_until_complete(
            check_service(services.search, access, corpus, via_sql, q, k, expected)
        )
    return compilable, bool(via_sql)


async def check_service(
    search: SearchService,
    access: AccessFilter,
    corpus: Corpus,
    allowed: set[str],
    q: np.ndarray,
    k: int,
    expected: np.ndarray,
) -> None:
    """The search service through the same filter shows exactly the allowed documents."""
    found = await search.vector_search(access, SearchFilters(), q.tolist(), k)
    ids = [c.chunk_id for c in found]
    assert {corpus.chunk_doc[c] for c in ids} <= allowed, "leak in vector_search"
    assert np.allclose(_distances(corpus, ids, q), expected, atol=1e-5)

    word = WORDS[k % len(WORDS)]
    result = await search.search(access, SearchQuery(text=f"chunk {word}", top_k=k))
    assert {str(h.document_id) for h in result.hits} <= allowed, "leak in search"
    assert len(result.hits) == min(k, len(allowed))  # one hit per document

    page = await search.list_documents(access, limit=500)
    assert {str(d.document_id) for d in page.items} == allowed

    counts = Counter((d["source"], d["collection"]) for d in corpus.docs if str(d["id"]) in allowed)
    summaries = await search.list_sources(access)
    listed = {(s.source, c.collection): c.documents for s in summaries for c in s.collections}
    assert listed == dict(counts)

    with pytest.raises(NotFound) as missing:
        await search.fetch_document(access, str(uuid.UUID(int=1)))
    for doc_id in sorted(allowed)[:1]:
        assert str((await search.fetch_document(access, doc_id)).summary.document_id) == doc_id
    for d in corpus.docs:
        if str(d["id"]) not in allowed:
            with pytest.raises(NotFound) as denied:
                await search.fetch_document(access, str(d["id"]))
            assert str(denied.value) == str(missing.value)  # denied reads as not found


# --- A few hundred documents per corpus -----------------------------------------------
#
# The examples above keep corpora tiny (up to 12 documents) so hypothesis can shrink
# them. This test runs the same random policies and callers against corpora of
# LARGE_DOCS documents (generated from a seed, not drawn: hypothesis cannot draw that
# much data), a fresh corpus every CORPUS_EVERY examples, and also switches a source off
# at random: the oracle serves a disabled source to nobody.

LARGE_DOCS = int(os.environ.get("KB_LEAK_ORACLE_DOCS", "300"))
LARGE_EXAMPLES = int(os.environ.get("KB_LEAK_ORACLE_LARGE_EXAMPLES", "200"))
CORPUS_EVERY = 50
META_VALUES: list[Any] = ["a", "b", "c", ["a"], 1, True, None]


def random_corpus(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    pool = PRINCIPALS + ROLES[:2]
    docs = []
    for i in range(n):
        metadata = {
            key: META_VALUES[int(rng.integers(len(META_VALUES)))]
            for key in ("team", "region")
            if rng.random() < 0.5
        }
        acl = rng.choice(len(pool), size=int(rng.integers(0, 4)), replace=False)
        docs.append(
            {
                # The first ids are the ones doc: selectors name.
                "id": uuid.UUID(DOC_IDS[i]) if i < len(DOC_IDS) else uuid.UUID(int=0xB16 << 64 | i),
                "source": SOURCES[int(rng.integers(len(SOURCES)))],
                "external_id": f"e{i}",
                "uri": f"kb://{i}",
                "title": f"doc {i:04d}",
                "content_type": CONTENT_TYPES[int(rng.integers(len(CONTENT_TYPES)))],
                "content_hash": "h",
                "collection": COLLECTIONS[int(rng.integers(len(COLLECTIONS)))],
                "path": PATHS[int(rng.integers(len(PATHS)))],
                "level": int(rng.integers(0, 5)),
                "acl": sorted(pool[j] for j in acl),
                "metadata_": metadata,
                "chunks": int(rng.integers(1, 3)),
            }
        )
    return docs


def test_large_corpora_match_the_oracle(prepared: Engine, services: Services) -> None:
    stats: Counter[str] = Counter()
    loaded: dict[str, Corpus] = {}

    @settings(
        max_examples=LARGE_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        scenario=scenarios(),
        disabled=st.sets(st.sampled_from(SOURCES), max_size=1),
        k=st.integers(1, 8),
    )
    def check(
        scenario: tuple[PolicySet, frozenset[str], list[str]], disabled: set[str], k: int
    ) -> None:
        n = stats["n"]
        if n % CORPUS_EVERY == 0:
            docs = random_corpus(np.random.default_rng(n), LARGE_DOCS)
            with prepared.connect() as conn:
                loaded["corpus"] = _load(conn, docs, n)
        with_service = n % SERVICE_EVERY == 0
        allowed, compilable = check_large(
            prepared, services, loaded["corpus"], scenario, frozenset(disabled), k, with_service
        )
        stats["n"] += 1
        stats["allowed"] += bool(allowed)
        stats["compilable"] += compilable
        stats["service"] += with_service
        stats["documents"] = max(stats["documents"], len(loaded["corpus"].docs))

    check()
    assert stats["n"] >= LARGE_EXAMPLES and stats["documents"] == LARGE_DOCS
    assert stats["allowed"] >= LARGE_EXAMPLES // 4
    assert stats["compilable"] >= LARGE_EXAMPLES // 2


def check_large(
    prepared: Engine,
    services: Services,
    corpus: Corpus,
    scenario: tuple[PolicySet, frozenset[str], list[str]],
    disabled: frozenset[str],
    k: int,
    with_service: bool,
) -> tuple[set[str], bool]:
    policy_set, admins, principals = scenario
    engine = PolicyEngine.of(
        policy_set, version=1, admin_principals=admins, disabled_sources=disabled
    )
    access = engine.filter_for(Caller.of(*principals))
    compilable = not engine.snapshot.problems
    oracle_enforcer = build_enforcer(
        [
            [r.subject, r.object, r.effect, "" if r.max_level is None else str(r.max_level), r.when]
            for r in policy_set.rules
        ],
        roles=[(g.member, g.role) for g in policy_set.roles],
        collections=[(c.child, c.parent) for c in policy_set.collections],
        admin_principals=admins,
    )
    oracle = {
        str(d["id"])
        for d in corpus.docs
        if d["source"] not in disabled and enforce(oracle_enforcer, principals, attrs(d))
    }
    with prepared.connect() as conn:
        stmt = select(Document.id).where(access.where(AuthzColumns.of_documents(Document)))
        via_sql = {str(i) for i in conn.execute(stmt).scalars()}
    rechecked = {str(d["id"]) for d in corpus.docs if access.permits(attrs(d))}
    assert via_sql == rechecked, "the SQL predicate and the Casbin re-check disagree"
    assert via_sql <= oracle, f"leak: {sorted(via_sql - oracle)[:5]}"
    if compilable:
        assert via_sql == oracle
        assert access.exact
    if with_service:
        services.loop.run_until_complete(
            check_large_service(services.search, access, corpus, via_sql, k)
        )
    return via_sql, compilable


async def check_large_service(
    search: SearchService, access: AccessFilter, corpus: Corpus, allowed: set[str], k: int
) -> None:
    """Listings and counts (counted in SQL when the filter is exact) and top-k."""
    page = await search.list_documents(access, limit=LARGE_DOCS + 1)
    assert {str(d.document_id) for d in page.items} == allowed
    counts = Counter((d["source"], d["collection"]) for d in corpus.docs if str(d["id"]) in allowed)
    summaries = await search.list_sources(access)
    listed = {(s.source, c.collection): c.documents for s in summaries for c in s.collections}
    assert listed == dict(counts)
    q = np.random.default_rng(k).standard_normal(DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    found = await search.vector_search(access, SearchFilters(), q.tolist(), k)
    allowed_chunks = [c for c in corpus.chunk_ids if corpus.chunk_doc[c] in allowed]
    assert {corpus.chunk_doc[c.chunk_id] for c in found} <= allowed, "leak in vector_search"
    assert np.allclose(
        _distances(corpus, [c.chunk_id for c in found], q),
        _distances(corpus, allowed_chunks, q)[:k],
        atol=1e-5,
    )
    denied = [str(d["id"]) for d in corpus.docs if str(d["id"]) not in allowed][:5]
    for doc_id in denied:
        with pytest.raises(NotFound):
            await search.fetch_document(access, doc_id)
