"""Which surface words of a search's hits the query matched (for passages and highlights).

The database's own tokeniser (``kb_bm25_terms``, the one that indexed the chunks) decides,
so ``ERR-4031`` and ``running`` (query: ``run``) are found as the index found them.

Stemming every distinct word of ten hits in the database cost more of its time per search
than loading them, and nearly all of those words cannot match: the English Snowball
stemmer keeps a word's first two letters (reading ``y`` as ``i``: dying -> die), so a plain
word can only stem to a query term if it starts like some word of the query. For ASCII
text, where Python's ``[A-Za-z0-9]`` and the database's ``[[:alnum:]]`` agree, the hits are
tokenised here and only words that may match go to the database; those still get its
exact decision. Anything that could be a compound token (a joiner or an inner capital)
always goes, short words always go, and a non-ASCII chunk or query is tokenised by the
database as a whole, so no word the database would match is left out.

Which terms a word yields never changes (the tokeniser is an immutable function of the
word), so ASCII words are asked of the database once per process and then remembered
(:class:`WordTerms`); with the query's terms already known from the keyword leg's weights
statement, a search whose hit words are all remembered sends no statement at all.
"""

from __future__ import annotations

import re

from sqlalchemy import BigInteger, Boolean, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from server.search.repository import plain_rows

# kb_bm25_terms' token pattern, for ASCII text.
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-_./@:+#][A-Za-z0-9]+)*")
# Where a word of the query may start: a run of letters and digits, or a capital inside one
# (CamelCase and ACRONYMWord parts are words of their own to the tokeniser).
_WORD_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]|[A-Z]")


def _start(word: str) -> str:
    return word[:2].lower().replace("y", "i")


def _query_starts(query: str) -> frozenset[str]:
    return frozenset(_start(query[m.start() : m.start() + 2]) for m in _WORD_START.finditer(query))


def _may_match(token: str, starts: frozenset[str]) -> bool:
    """Short, starts like a query word, or possibly compound: a joiner (the token's only
    non-alphanumeric characters) or a capital after the first letter, a superset of the
    tokeniser's compound shape. Called for some 500 tokens per search: string methods
    only, no regular expression."""
    return (
        len(token) < 3
        or _start(token) in starts
        or not token.isalnum()
        or token[1:] != token[1:].lower()
    )


# Each distinct word goes once through the tokeniser (a word that occurs in every chunk is
# tokenised once, not once per occurrence). For one token, kb_bm25_terms yields what
# kb_bm25_stem yields for a plain word and what kb_bm25_token_terms yields for a compound
# one (the same test of the token's shape as kb_bm25_terms); calling those directly, plain
# words cost one inlined ts_lexize each instead of a set-returning function call with its
# own regular-expression scan.
_COMPOUND = "'[-_./@:+#]|[[:lower:][:digit:]][[:upper:]]|[[:upper:]]{3}[[:lower:]]'"
_MATCHED_WORDS = text(
    f"""
    WITH q AS MATERIALIZED (SELECT DISTINCT t FROM kb_bm25_terms(:query) AS t),
    tok AS MATERIALIZED (
        SELECT d.id, d.word FROM unnest(:word_ids, :words) AS d(id, word)
        UNION
        SELECT d.id, m[1] AS word
        FROM unnest(:ids, :docs) AS d(id, doc),
             regexp_matches(d.doc, '[[:alnum:]]+(?:[-_./@:+#][[:alnum:]]+)*', 'g') AS m
    ),
    words AS MATERIALIZED (SELECT DISTINCT word FROM tok),
    hit AS (
        SELECT w.word FROM words AS w
        WHERE w.word !~ {_COMPOUND} AND kb_bm25_stem(w.word) IN (SELECT t FROM q)
        UNION ALL
        SELECT w.word FROM words AS w
        WHERE w.word ~ {_COMPOUND} AND EXISTS (
            SELECT 1 FROM kb_bm25_token_terms(w.word) AS t(term)
            WHERE t.term IN (SELECT t FROM q)
        )
    )
    SELECT tok.id, tok.word FROM tok JOIN hit USING (word)
    """
).bindparams(
    bindparam("query", type_=Text),
    bindparam("word_ids", type_=ARRAY(BigInteger)),
    bindparam("words", type_=ARRAY(Text)),
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("docs", type_=ARRAY(Text)),
)


def candidate_words(
    chunk_texts: dict[int, str], query_text: str
) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """(chunk id, word) pairs that may match the query, and the texts the database must
    tokenise itself (all of them when the query is not ASCII)."""
    if not query_text.isascii():
        return [], dict(chunk_texts)
    starts = _query_starts(query_text)
    pairs: list[tuple[int, str]] = []
    whole: dict[int, str] = {}
    for chunk_id, chunk_text in chunk_texts.items():
        if not chunk_text.isascii():
            whole[chunk_id] = chunk_text
            continue
        pairs += [
            (chunk_id, t) for t in set(_ASCII_TOKEN.findall(chunk_text)) if _may_match(t, starts)
        ]
    return pairs, whole


class WordTerms:
    """Each ASCII word (as written) with the index terms the tokeniser gives it.

    Bounded: past ``max_words`` the oldest half is forgotten (a forgotten word costs one
    more lookup, never a wrong answer), and a word longer than ``MAX_WORD_CHARS`` (a hash,
    a base64 run) is looked up every time instead, so text full of long tokens cannot
    make it large. Only the event loop touches it.
    """

    MAX_WORD_CHARS = 64

    def __init__(self, max_words: int = 50_000) -> None:
        self.max_words = max_words
        self._terms: dict[str, tuple[str, ...]] = {}

    def get(self, word: str) -> tuple[str, ...] | None:
        return self._terms.get(word)

    def remember(self, found: dict[str, tuple[str, ...]]) -> None:
        found = {w: t for w, t in found.items() if len(w) <= self.MAX_WORD_CHARS}
        if len(self._terms) + len(found) > self.max_words:
            keep = list(self._terms.items())[len(self._terms) // 2 :]
            self._terms = dict(keep)
        self._terms.update(found)

    def __len__(self) -> int:
        return len(self._terms)


# The terms of each word: what the statement above decides per word, returned instead of
# tested (a plain word's stem, '' for a stop word; a compound token's terms); and, when
# the caller does not know them, the query's terms in a row of its own (word NULL).
_WORD_TERMS = text(
    f"""
    SELECT NULL::text AS word, ARRAY(SELECT DISTINCT t FROM kb_bm25_terms(:query) AS t) AS terms
    WHERE :with_query
    UNION ALL
    SELECT w.word,
           CASE WHEN w.word ~ {_COMPOUND} THEN ARRAY(SELECT kb_bm25_token_terms(w.word))
                ELSE ARRAY[kb_bm25_stem(w.word)] END
    FROM unnest(:words) AS w(word)
    """
).bindparams(
    bindparam("query", type_=Text),
    bindparam("with_query", type_=Boolean),
    bindparam("words", type_=ARRAY(Text)),
)


async def matched_words(
    session: AsyncSession,
    chunk_texts: dict[int, str],
    query_text: str,
    *,
    memo: WordTerms | None = None,
    query_terms: frozenset[str] | None = None,
) -> dict[int, set[str]]:
    """Per chunk, the surface words (as written) whose terms the query shares.

    ``memo``: words already looked up (the words of ASCII text are then looked up one by
    one, and only those it does not hold go to the database; other text still goes
    whole). ``query_terms``: the terms of ``query_text`` with a document frequency above
    zero, if the caller has them (the keyword leg's weights): a term no chunk holds cannot
    be a hit word's term either.
    """
    if not chunk_texts or not query_text.strip():
        return {}
    pairs, whole = candidate_words(chunk_texts, query_text)
    if not pairs and not whole:
        return {}
    found: dict[int, set[str]] = {}
    if memo is not None and pairs:
        found = await _matched_by_word(session, pairs, query_text, memo, query_terms)
        pairs = []
    if pairs or whole:
        params = {
            "query": query_text,
            "word_ids": [i for i, _ in pairs],
            "words": [w for _, w in pairs],
            "ids": list(whole),
            "docs": list(whole.values()),
        }
        for row in await plain_rows(session, _MATCHED_WORDS, params):
            found.setdefault(int(row.id), set()).add(str(row.word))
    return found


async def _matched_by_word(
    session: AsyncSession,
    pairs: list[tuple[int, str]],
    query_text: str,
    memo: WordTerms,
    query_terms: frozenset[str] | None,
) -> dict[int, set[str]]:
    if query_terms is not None and not query_terms:
        return {}  # no term of the query is in any chunk
    unknown = sorted({w for _, w in pairs if memo.get(w) is None})
    # Kept beside the memo for this call: words too long to remember are still matched.
    looked_up: dict[str, tuple[str, ...]] = {}
    if unknown or query_terms is None:
        params = {"query": query_text, "with_query": query_terms is None, "words": unknown}
        for row in await plain_rows(session, _WORD_TERMS, params):
            terms = tuple(t for t in row.terms if t)
            if row.word is None:
                query_terms = frozenset(terms)
            else:
                looked_up[str(row.word)] = terms
        memo.remember(looked_up)
    wanted = query_terms or frozenset()
    found: dict[int, set[str]] = {}
    for chunk_id, word in pairs:
        terms = looked_up.get(word) or memo.get(word) or ()
        if any(t in wanted for t in terms):
            found.setdefault(chunk_id, set()).add(word)
    return found


__all__ = ["WordTerms", "candidate_words", "matched_words"]
