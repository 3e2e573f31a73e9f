"""The matched words of a search's hits: what Python sends ahead to the database changes
nothing the database decides. Real Postgres, the real tokeniser (migration 0003)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text

from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.search.matched_words import (
    _MATCHED_WORDS,
    WordTerms,
    candidate_words,
    matched_words,
)
from server.search.repository import plain_rows
from server.settings import Settings
from tests.search.conftest import company_docs

pytestmark = pytest.mark.anyio

# Words the English stemmer changes early (dying -> die, skies -> sky), compound tokens of
# every shape the tokeniser splits, and non-ASCII words the database tokenises itself.
TRICKY = (
    "Dying lying tying skies cried cries Running runs ran Yelling. ERR-4031 and ERR_4031 "
    "at PaymentGateway.charge, HTTPServer, pg_dump v2.3.1 from ops@example.com; 5G "
    "node-exporter x86_64 by yes idly gently early only singly news atlas."
)
NON_ASCII = "A naïve café: Größe, façade, résumé, Ölpreis, dying skies."


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database.url is not None
    url = to_sqlalchemy_url(settings.database.url.get_secret_value())
    database = Database.open(DatabaseTarget(url), settings)
    try:
        yield database
    finally:
        await database.dispose()


def _texts() -> dict[int, str]:
    texts = [chunk for doc in company_docs() for chunk in doc.paragraphs]
    return dict(enumerate([*texts, TRICKY, NON_ASCII], start=1))


def _queries(texts: dict[int, str]) -> list[str]:
    words = sorted({w for t in texts.values() for w in re.findall(r"\S+", t)})
    return [
        *words,
        "die lie tie sky",
        "run payment gateway",
        "err 4031 server",
        "PaymentGateway http",
        "naive cafe grosse",
        "a naïve façade",
        "Dying",
    ]


async def _all_by_the_database(
    db: Database, texts: dict[int, str], query: str
) -> dict[int, set[str]]:
    """The statement with every text tokenised in the database (no words sent ahead)."""
    params = {
        "query": query,
        "word_ids": [],
        "words": [],
        "ids": list(texts),
        "docs": list(texts.values()),
    }
    found: dict[int, set[str]] = {}
    async with db.sessions() as session, session.begin():
        for row in await plain_rows(session, _MATCHED_WORDS, params):
            found.setdefault(int(row.id), set()).add(str(row.word))
    return found


async def test_words_sent_ahead_match_exactly_what_the_database_would(db: Database) -> None:
    texts = _texts()
    queries = _queries(texts)
    matched_any = 0
    for query in queries:
        expected = await _all_by_the_database(db, texts, query)
        async with db.sessions() as session, session.begin():
            got = await matched_words(session, texts, query)
        assert got == expected, query
        matched_any += bool(expected)
    # The comparison is not vacuous: most single-word queries match something.
    assert matched_any > len(queries) // 2
    # Spot checks the stemmer's early changes and the compound shapes.
    async with db.sessions() as session, session.begin():
        tricky = (await matched_words(session, texts, "die sky payment 4031"))[len(texts) - 1]
    assert {"Dying", "skies", "PaymentGateway.charge", "ERR-4031", "ERR_4031"} <= tricky


def test_few_words_are_sent_for_an_ascii_query() -> None:
    texts = _texts()
    pairs, whole = candidate_words(texts, "salary payroll")
    assert whole == {len(texts): NON_ASCII}  # the non-ASCII chunk goes whole
    sent = {w for _, w in pairs}
    assert {"Salaries", "payroll"} <= sent
    assert "backups" not in sent and "laptop" not in sent
    # A non-ASCII query: the database tokenises every text itself.
    pairs, whole = candidate_words(texts, "Größe")
    assert pairs == [] and whole == texts


async def _query_terms(db: Database, query: str) -> frozenset[str]:
    async with db.sessions() as session, session.begin():
        rows = await session.execute(
            text("SELECT DISTINCT t FROM kb_bm25_terms(:q) AS t"), {"q": query}
        )
        return frozenset(str(t) for t in rows.scalars())


async def test_remembered_words_match_exactly_what_the_database_would(db: Database) -> None:
    """Words looked up once and remembered, with the query's terms given or looked up: the
    same words as the database deciding over the whole texts, cold and warm."""
    texts = _texts()
    memo = WordTerms()
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    for rounds in range(2):
        for query in _queries(texts):
            expected = await _all_by_the_database(db, texts, query)
            terms = await _query_terms(db, query)
            for given in (None, terms):
                async with db.sessions() as session, session.begin():
                    statements.clear()
                    got = await matched_words(session, texts, query, memo=memo, query_terms=given)
                    sent = [s for s in statements if "kb_bm25" in s]
                assert got == expected, (query, given is None, rounds)
                if rounds == 1 and given is not None and query.isascii():
                    # Warm, and the query's terms known: only non-ASCII text goes.
                    assert all("regexp_matches" in s for s in sent), query
    assert len(memo) > 50


async def test_a_warm_ascii_search_sends_nothing(db: Database) -> None:
    texts = {k: v for k, v in _texts().items() if v.isascii()}
    query = "payment server dying skies"
    terms = await _query_terms(db, query)
    memo = WordTerms()
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    async with db.sessions() as session, session.begin():
        cold = await matched_words(session, texts, query, memo=memo, query_terms=terms)
        sent_cold = len(statements)
        warm = await matched_words(session, texts, query, memo=memo, query_terms=terms)
    assert cold == warm and cold
    assert sent_cold >= 1 and len(statements) == sent_cold
    # A query none of whose terms any chunk holds matches nothing, without asking.
    async with db.sessions() as session, session.begin():
        fresh = WordTerms()
        assert await matched_words(session, texts, query, memo=fresh, query_terms=frozenset()) == {}
    assert len(statements) == sent_cold and len(fresh) == 0


async def test_a_full_memo_forgets_its_oldest_words_and_stays_right(db: Database) -> None:
    memo = WordTerms(max_words=4)
    memo.remember({"a": ("a",), "b": ("b",), "c": ()})
    memo.remember({"d": ("d",), "e": ("e",)})
    assert len(memo) == 4 and memo.get("a") is None and memo.get("e") == ("e",)
    assert memo.get("c") == ()  # a stop word is remembered as having no terms
    long_word = "x" * (WordTerms.MAX_WORD_CHARS + 1)
    memo.remember({long_word: (long_word,)})
    assert memo.get(long_word) is None and len(memo) == 4
    # ... and is still matched, by a lookup each time.
    async with db.sessions() as session, session.begin():
        found = await matched_words(session, {1: f"a {long_word} b"}, long_word, memo=memo)
    assert found == {1: {long_word}}
    # Through searches that each overflow it, the answers stay the database's.
    texts = {k: v for k, v in _texts().items() if v.isascii()}
    memo = WordTerms(max_words=40)
    for query in ("payment server", "backup restore", "salary holiday", "dying skies err"):
        expected = await _all_by_the_database(db, texts, query)
        async with db.sessions() as session, session.begin():
            assert await matched_words(session, texts, query, memo=memo) == expected
        assert expected
