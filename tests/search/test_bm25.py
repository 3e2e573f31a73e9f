"""The BM25 keyword leg: tokeniser, statistics kept by the chunk triggers, scores, syntax.

Statistics are compared with a from-scratch computation over the chunks as they are, after
the real ingestion statements (``replace_documents``, ``mark_deleted``) add, replace and
delete documents; scores are compared with an independent Okapi BM25 in Python.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from core.errors import InvalidRequest
from server.db.engine import to_sqlalchemy_url
from server.embeddings.base import Embedder
from server.ingest import repository as ingest
from server.ingest.chunking import ChunkText
from server.search import SearchFilters, SearchQuery
from server.search.query_syntax import looks_up_identifier
from server.search.repository import Candidate
from server.search.service import best_chunk_per_document, keyword_first, weighted_rrf
from server.settings import Settings
from tests.search.corpus import Doc, acl_filter, insert_documents, insert_sources, open_service

pytestmark = pytest.mark.anyio

TOKENS = [
    ("ERR-4031", ["err-4031", "err", "4031"]),
    ("pg_dump", ["pg_dump", "pg", "dump"]),
    ("v2.3.1", ["v2.3.1", "v2", "3", "1"]),
    ("INC-2025-014", ["inc-2025-014", "inc", "2025", "014"]),
    ("alice.smith@example.com", ["alice.smith@example.com", "alic", "smith", "exampl", "com"]),
    ("PaymentGateway", ["paymentgateway", "payment", "gateway"]),
    ("HTTPServer", ["httpserver", "http", "server"]),
    (
        "PaymentGateway.charge",
        ["paymentgateway.charge", "paymentgateway", "payment", "gateway", "charg"],
    ),  # fmt: skip
    ("42 3.14", ["42", "3.14", "3", "14"]),
    ("The running dogs of the company", ["run", "dog", "compani"]),
    ("how-to", ["how-to"]),
    ("end of sentence. Next", ["end", "sentenc", "next"]),
]


def terms_of(dsn: str, text: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT t FROM kb_bm25_terms(%s) AS t", (text,))]


@pytest.mark.parametrize(("text", "expected"), TOKENS, ids=[t for t, _ in TOKENS])
def test_tokeniser_keeps_identifiers_whole_and_in_parts(
    fresh_database: str, text: str, expected: list[str]
) -> None:
    assert terms_of(fresh_database, text) == expected


# ------------------------------------------------------------------ statistics


def _stored(dsn: str) -> tuple[dict[str, int], tuple[int, int], set[tuple[str, int, int, int]]]:
    with psycopg.connect(dsn) as conn:
        df: dict[str, int] = dict(conn.execute("SELECT term, df FROM bm25_terms").fetchall())
        row = conn.execute("SELECT chunks, total_len FROM bm25_corpus").fetchone()
        assert row is not None
        postings = set(conn.execute("SELECT term, chunk_id, tf, len FROM bm25_postings").fetchall())
    return df, (int(row[0]), int(row[1])), postings


def _from_scratch(
    dsn: str,
) -> tuple[dict[str, int], tuple[int, int], set[tuple[str, int, int, int]]]:
    with psycopg.connect(dsn) as conn:
        chunks = conn.execute("SELECT id, heading || ' ' || text FROM chunks").fetchall()
        per_chunk = {
            cid: Counter(r[0] for r in conn.execute("SELECT t FROM kb_bm25_terms(%s) t", (doc,)))
            for cid, doc in chunks
        }
    df: Counter[str] = Counter()
    postings = set()
    for cid, tf in per_chunk.items():
        length = sum(tf.values())
        df.update(tf.keys())
        postings |= {(term, cid, n, length) for term, n in tf.items()}
    total = sum(sum(tf.values()) for tf in per_chunk.values())
    return dict(df), (len(per_chunk), total), postings


def _write(source: str, external_id: str, paragraphs: list[str]) -> ingest.DocumentWrite:
    chunks = [
        ChunkText(i, f"Doc {external_id}", p, len(p.split())) for i, p in enumerate(paragraphs)
    ]
    return ingest.DocumentWrite(
        source=source,
        external_id=external_id,
        uri=f"file:///{external_id}",
        title=f"Doc {external_id}",
        content_type="text/plain",
        content_hash=uuid.uuid4().hex,
        content="\n\n".join(paragraphs),
        metadata={},
        collection="c",
        path=f"/{external_id}",
        level=0,
        acl=("group:eng",),
        size_bytes=1,
        modified_at=datetime.now(UTC),
        chunks=chunks,
    )


def test_statistics_stay_exact_through_add_replace_and_delete(fresh_database: str) -> None:
    insert_sources(fresh_database, {"s": ("files", "")})
    engine = create_engine(to_sqlalchemy_url(fresh_database), poolclass=NullPool)
    rng = np.random.default_rng(1)

    def vectors(n: int) -> np.ndarray:
        return rng.random((n, 384), dtype=np.float32)

    def check() -> None:
        assert _stored(fresh_database) == _from_scratch(fresh_database)

    try:
        with engine.begin() as conn:
            docs = [
                _write("s", "a", ["ERR-4031 stops the robots.", "Run pg_dump nightly."]),
                _write("s", "b", ["Robots stop; robots restart.", "v2.3.1 fixes ERR-4031."]),
                _write("s", "c", ["Payroll runs on the 25th."]),
            ]
            ingest.replace_documents(conn, docs, vectors(5))
        check()
        df, corpus, _ = _stored(fresh_database)
        assert df["err-4031"] == 2 and df["robot"] == 2 and corpus[0] == 5
        # Replace: "a" loses ERR-4031 and gains a chunk, in one transaction.
        with engine.begin() as conn:
            new_a = _write("s", "a", ["Nightly pg_dump.", "Restore with pg_restore.", "Done."])
            ingest.replace_documents(conn, [new_a], vectors(3))
        check()
        df, corpus, _ = _stored(fresh_database)
        assert df["err-4031"] == 1 and df["pg_restore"] == 1 and corpus[0] == 6
        # Delete at the source: its chunks and every statistic they carried go.
        with engine.begin() as conn:
            assert ingest.mark_deleted(conn, "s", ["b"]) == 1
        check()
        df, corpus, _ = _stored(fresh_database)
        assert "err-4031" not in df and "v2.3.1" not in df and corpus[0] == 4
        # A source removed with its documents (ON DELETE CASCADE) empties the index.
        with engine.begin() as conn:
            ingest.delete_source(conn, "s")
        assert _stored(fresh_database) == ({}, (0, 0), set())
    finally:
        engine.dispose()


# ------------------------------------------------------------------ scoring and syntax

ENG = "group:eng"
HR = "group:hr"


def okapi(
    docs: dict[int, list[str]], query: list[str], k1: float = 1.2, b: float = 0.75
) -> dict[int, float]:
    """Reference BM25 (Lucene IDF) over token lists, written from the formula."""
    n = len(docs)
    avgdl = sum(len(t) for t in docs.values()) / n
    df = Counter(term for toks in docs.values() for term in set(toks))
    scores: dict[int, float] = {}
    for cid, toks in docs.items():
        tf = Counter(toks)
        s = 0.0
        for q in query:
            if tf[q]:
                idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
                s += idf * tf[q] * (k1 + 1) / (tf[q] + k1 * (1 - b + b * len(toks) / avgdl))
        if s > 0:
            scores[cid] = s
    return scores


CORPUS = [
    Doc("Error ERR-4031", ["Robots report ERR-4031 when a route lock expires."], [ENG]),
    Doc("Error ERR-4013", ["ERR-4013 means the battery is low; robots return to dock."], [ENG]),
    Doc("Backups", ["Nightly backups run pg_dump and upload the archive."], [ENG]),
    Doc("Restores", ["Restore a pg_dump archive with pg_restore, then check the robots."], [ENG]),
    Doc("Payroll", ["Payroll runs on the 25th; robots are not paid."], [HR]),
    *[
        Doc(f"HR note {i}", [f"ERR-4031 ERR-4031 appears in HR note {i} about robots."], [HR])
        for i in range(30)
    ],  # fmt: skip
]


async def test_keyword_scores_equal_reference_bm25(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    ids = insert_documents(fresh_database, CORPUS, embedder)
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT id, heading || ' ' || text FROM chunks").fetchall()
    tokens = {cid: terms_of(fresh_database, doc) for cid, doc in rows}
    query = "robots ERR-4031 pg_dump"
    expected = okapi(tokens, terms_of(fresh_database, query))
    everyone = acl_filter(ENG, HR)
    async with open_service(settings, embedder) as svc:
        got = await svc.keyword_search(everyone, SearchFilters(), query, 400)
    assert {c.chunk_id for c in got} == set(expected)
    for cand in got:
        assert cand.score == pytest.approx(expected[cand.chunk_id], rel=1e-9)
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
    assert len(ids) == len(CORPUS)


async def test_top_k_is_the_best_among_allowed_rows_not_a_post_filter(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    # Thirty HR notes outscore everything for ERR-4031; an engineer must still get all three
    # engineering chunks that match (a post-filtered top 5 would hold none), never an HR one.
    insert_sources(fresh_database, {"wiki": ("files", "")})
    insert_documents(fresh_database, CORPUS, embedder)
    eng = acl_filter(ENG)
    async with open_service(settings, embedder) as svc:
        got = await svc.keyword_search(eng, SearchFilters(), "ERR-4031 robots", 5)
        hits = await svc.search(eng, SearchQuery("ERR-4031", top_k=3, mode="keyword"))
    assert len(got) == 3
    titles = [h.title for h in hits.hits]
    assert titles[0] == "Error ERR-4031"
    assert not any(t.startswith(("HR note", "Payroll")) for t in titles)


async def test_web_syntax_phrase_exclusion_and_or(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    insert_documents(fresh_database, CORPUS[:4], embedder)
    eng = acl_filter(ENG)
    async with open_service(settings, embedder) as svc:

        async def titles(text: str, mode: str) -> list[str]:
            result = await svc.search(eng, SearchQuery(text, top_k=10, mode=mode))
            return [h.title for h in result.hits]

        for mode in ("keyword", "hybrid"):
            assert await titles('"pg_dump archive"', mode) == ["Restores"]
            assert "Backups" not in await titles("pg_dump -nightly", mode)
            assert "Restores" in await titles("pg_dump -nightly", mode)
            either = await titles("pg_restore OR ERR-4013", mode)
            assert {"Restores", "Error ERR-4013"} <= set(either[:2])
        # Any word matches by default: one known word among unknown ones still finds it
        # (and pg_dump's part "pg" lets Backups follow).
        assert (await titles("zebra quokka pg_restore", "keyword"))[0] == "Restores"


async def test_mode_is_checked_and_semantic_runs_without_words(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    insert_documents(fresh_database, CORPUS[:4], embedder)
    eng = acl_filter(ENG)
    async with open_service(settings, embedder) as svc:
        with pytest.raises(InvalidRequest, match="mode must be one of"):
            await svc.search(eng, SearchQuery("robots", mode="fuzzy"))
        # No word in common: keyword finds nothing, semantic still answers.
        assert (await svc.search(eng, SearchQuery("database copy", mode="keyword"))).hits == ()
        semantic = await svc.search(eng, SearchQuery("database copy", mode="semantic"))
        assert semantic.hits and semantic.hits[0].title in {"Backups", "Restores"}


def test_lookups_put_keyword_matches_first_where_rrf_would_not() -> None:
    doc = uuid.uuid4
    exact, near, other = (
        Candidate(1, doc(), 9.0),
        Candidate(2, doc(), 4.0),
        Candidate(3, doc(), 0.1),
    )
    lexical = [exact, near]
    vector = [near, other, exact]  # embeddings rank the near miss first, the match last
    rrf = best_chunk_per_document(weighted_rrf([(1.0, lexical), (1.0, vector)]))
    assert rrf[0][1] is near  # plain fusion lets the near miss win
    first = best_chunk_per_document(keyword_first(lexical, vector))
    assert [c.chunk_id for _, c in first] == [1, 2, 3]


@pytest.mark.parametrize(
    ("query", "lookup"),
    [("ERR-4031", True), ("what changed in v2.3.1", True), ("run pg_dump", True),
     ("PaymentGateway errors", True), ("mail bob@example.com", True),
     ("parental leave", False), ("pre-classified documents", False),
     ("fleet.yaml keys", True), ("abstract mathematics, e.g. group theory", False),
     ("a long question about 42 things " + "word " * 20, False)],
)  # fmt: skip
def test_identifier_lookups_are_recognised(query: str, lookup: bool) -> None:
    assert looks_up_identifier(query) is lookup


async def test_relevance_floor_drops_unrelated_semantic_hits_but_keeps_word_matches(
    fresh_database: str, make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    insert_documents(fresh_database, CORPUS[:4], embedder)
    eng = acl_filter(ENG)
    unrelated = "recipe for lemon cake with blueberries"
    async with open_service(make_settings(), embedder) as svc:
        assert len((await svc.search(eng, SearchQuery(unrelated, mode="semantic"))).hits) == 4
    floored = make_settings(search={"relevance_floor": 0.5})
    async with open_service(floored, embedder) as svc:
        assert (await svc.search(eng, SearchQuery(unrelated, mode="semantic"))).hits == ()
        # A hit a query word matched stays, however far its embedding is.
        kept = await svc.search(eng, SearchQuery(f"{unrelated} pg_restore"))
    assert [h.title for h in kept.hits] == ["Restores", "Backups"]


async def test_chunks_a_caller_cannot_read_do_not_move_their_scores(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    # The attack: an engineer searches a word, then HR adds thirty hidden chunks holding it.
    # Raw BM25 would lower the engineer's score (the word's document frequency grew), so
    # the score alone would reveal that hidden chunks mention it. Shown scores are by rank.
    insert_sources(fresh_database, {"wiki": ("files", "")})
    insert_documents(fresh_database, CORPUS[:5], embedder)
    eng = acl_filter(ENG)

    async def seen(mode: str) -> list[tuple[str, float]]:
        async with open_service(settings, embedder) as svc:
            result = await svc.search(eng, SearchQuery("ERR-4031 robots", top_k=5, mode=mode))
        return [(h.title, h.score) for h in result.hits]

    before = {mode: await seen(mode) for mode in ("keyword", "hybrid")}
    assert before["keyword"] and before["keyword"][0][0] == "Error ERR-4031"
    insert_documents(fresh_database, CORPUS[5:], embedder)
    after = {mode: await seen(mode) for mode in ("keyword", "hybrid")}
    assert after == before


# ------------------------------------------------------------- the two scoring plans

PLAN_QUERIES = [
    "ERR-4031 robots",
    "robots",
    "pg_dump archive",
    '"pg_dump archive"',
    "robots -nightly",
    # Five terms: the statement built for six, one slot left empty.
    "robots report battery dock archive",
    # Every word of six documents: a statement of many branches, most of them filled.
    " ".join(p for d in CORPUS[:6] for p in d.paragraphs),
]


def same_ranking(a: list[Candidate], b: list[Candidate]) -> bool:
    """The same rows, best first, up to ties.

    A chunk's score is a float sum over its query terms, and the two plans may add the
    terms in another order, which can move the last bit: the thirty identical HR notes
    then tie differently (by chunk id) within one plan. Scores are compared to 9
    decimals; rows above the lowest returned score must be the same, and at that score
    any of the tied rows may fill the remaining places.
    """
    ra = [(round(c.score, 9), c.chunk_id) for c in a]
    rb = [(round(c.score, 9), c.chunk_id) for c in b]
    if len(ra) != len(rb) or sorted(s for s, _ in ra) != sorted(s for s, _ in rb):
        return False
    if not ra:
        return True
    cut = ra[-1][0]
    ordered = all(x[0] >= y[0] for x, y in zip(ra, ra[1:])) and all(
        x[0] >= y[0] for x, y in zip(rb, rb[1:])
    )
    return ordered and {i for s, i in ra if s > cut} == {i for s, i in rb if s > cut}


async def test_scoring_in_score_order_returns_what_scoring_the_allowed_rows_does(
    fresh_database: str,
    settings: Settings,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broad caller's keyword leg checks chunks in score order until enough pass; it must
    return exactly the rows of the plan that checks every matching chunk: for readers of
    everything, of one group, of nothing, with a deny-like narrowing by filters, after a
    document was deleted, with phrases and exclusions, at small and large limits, and
    whether it first checks only the best few scored chunks or all of them."""
    from server.search import keyword as kw
    from server.search.query_syntax import parse_query

    insert_sources(fresh_database, {"wiki": ("files", ""), "hr": ("files", "")})
    ids = insert_documents(fresh_database, CORPUS, embedder)
    deleted = next(iter(ids))  # "Error ERR-4031", the best ERR-4031 match for engineers
    with psycopg.connect(fresh_database) as conn:
        conn.execute("UPDATE documents SET deleted_at = now() WHERE id = %s", (deleted,))
    callers = {
        "everyone": acl_filter(ENG, HR),
        "eng": acl_filter(ENG),
        "hr": acl_filter(HR),
        "nobody": acl_filter("group:none"),
    }
    compared = 0
    async with open_service(settings, embedder) as svc:
        async with svc._db.sessions() as session, session.begin():
            five = await kw.query_weights(session, parse_query(PLAN_QUERIES[-2]).scored)
            many = await kw.query_weights(session, parse_query(PLAN_QUERIES[-1]).scored)
        assert len(five.terms) == 5 and kw.term_slots(5) == 6
        assert kw.term_slots(len(many.terms)) in {32, 48}  # not the array statement
        assert kw.term_slots(64) == 64 and kw.term_slots(65) is None  # then the arrays
        for name, access in callers.items():
            for text in PLAN_QUERIES:
                for limit in (3, 400):
                    runs = []
                    # Broad, with a first pass over the best 1 or 4 scored chunks (too few
                    # allowed there: the second pass must take over) or over all of them;
                    # with the terms one by one (merged) or as arrays.
                    variants = [
                        (False, None, True),
                        (True, None, True),
                        (True, 1, True),
                        (True, 4, True),
                        (True, 4, False),
                    ]
                    for broad, first, merged in variants:
                        # This corpus' postings are few: merged only when told to.
                        monkeypatch.setattr(kw, "MERGE_FROM_POSTINGS", 0 if merged else 10**9)
                        async with svc._db.sessions() as session, session.begin():
                            runs.append(
                                await kw.bm25_candidates(
                                    session,
                                    access,
                                    SearchFilters(),
                                    parse_query(text),
                                    limit,
                                    kw.Bm25Params(),
                                    broad=broad,
                                    scored_first=first,
                                )
                            )
                        monkeypatch.undo()
                    checked, *probed_runs = runs
                    label = f"{name} / {text} / {limit}"
                    for probed in probed_runs:
                        assert same_ranking(checked, probed), label
                        assert all(c.document_id != deleted for c in probed), label
                    compared += len(checked)
        assert not await svc.keyword_search(callers["nobody"], SearchFilters(), "robots", 10)
    assert compared > 100  # the comparisons saw rows, not empty lists


def test_the_merged_statement_is_taken_for_many_postings_only() -> None:
    from server.search import keyword as kw

    few = kw.QueryWeights(("a", "b", "c"), (1.0, 1.0, 1.0), 10.0, 19_999)
    many = kw.QueryWeights(few.terms, few.weights, 10.0, kw.MERGE_FROM_POSTINGS)
    assert kw.MERGE_FROM_POSTINGS == 20_000
    assert kw.merged_slots(few) is None  # the array statement plans faster
    assert kw.merged_slots(many) == 3


def test_the_first_pass_expects_a_margin_of_allowed_rows() -> None:
    from server.search import keyword as kw

    # A broad caller reads at least 6.3 % (100,000 chunks, threshold 6,300): 2,540 of the
    # best scored hold about 160 of its chunks for 40 wanted.
    assert kw.first_pass_rows(40, 0.063) == 2540
    assert kw.first_pass_rows(40, 1.0) == 160
    assert kw.first_pass_rows(40, 2.0) == 160  # a share above 1 is 1
    assert kw.first_pass_rows(40, None) is None  # corpus size unknown: no first pass
    assert kw.first_pass_rows(40, 0.0) is None


async def test_a_search_picks_the_score_order_plan_only_for_a_caller_known_to_be_broad(
    fresh_database: str, settings: Settings, embedder: Embedder
) -> None:
    from sqlalchemy import event

    from server.search.service import ScopeSizes

    insert_sources(fresh_database, {"wiki": ("files", "")})
    insert_documents(fresh_database, CORPUS[:4], embedder)
    eng = acl_filter(ENG)
    async with open_service(settings, embedder) as svc:
        sent: list[str] = []
        event.listen(
            svc._db.engine.sync_engine,
            "before_cursor_execute",
            lambda _c, _cur, statement, *_: sent.append(statement),
        )
        key = ScopeSizes.key(eng, SearchFilters())
        plans = {}
        for known in (None, True, False):  # unknown, small, broad
            svc.scope_sizes._items.pop(key, None)
            if known is not None:
                svc.scope_sizes.put(key, known)
            sent.clear()
            result = await svc.search(eng, SearchQuery("pg_dump archive", top_k=3, mode="keyword"))
            assert result.hits and result.hits[0].title in {"Backups", "Restores"}
            scoring = [s for s in sent if "bm25_postings" in s]
            assert len(scoring) == 1
            plans[known] = "AS readable" in scoring[0]
        # The first pass's size follows from the corpus size, once the planner knows it.
        svc._corpus = (None, time.monotonic())
        assert svc._least_broad_share() is None
        svc._corpus = (100_000.0, time.monotonic())
        share = svc._least_broad_share()
        assert share is not None and 0.05 < share < 0.08  # 6,300 of 100,000 (SearchTuning)
    assert plans == {None: False, True: False, False: True}
