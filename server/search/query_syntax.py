"""Web-search syntax in a query: ``"exact phrase"``, ``-excluded`` words and ``OR``.

Keyword search matches any word and ranks by BM25, so ``OR`` needs no special meaning
(``a OR b`` ranks like ``a b``; the word ``or`` is a stop word either way). A quoted
phrase is both scored (its words count like any others) and required, in order, in the
chunk; an excluded word removes every chunk that contains it.

Syntax applies to search-box queries only: in a long natural-language request (more than
``PROSE_WORDS`` words) quotes mark quoted terms and hyphens join words, as in prose, so
the words are scored and nothing is required or excluded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PHRASE = re.compile(r'"([^"]*)"')
_EXCLUDED = re.compile(r"(?:^|\s)-(\w[^\s]*)")
_OR = re.compile(r"\bOR\b")
PROSE_WORDS = 16


_TOKEN = re.compile(r"[^\W_]+(?:[-_./@:+#][^\W_]+)*")
# Digits, an underscore or @, a dotted name (fleet.yaml; not "e.g." or "U.S.") or an inner
# capital (PaymentGateway).
_IDENTIFIER = re.compile(r"\d|[_@]|[^\W\d_]{2}\.[^\W\d_]{2}|[a-z][A-Z]")


def looks_up_identifier(text: str) -> bool:
    """True for a short query naming a code, version, file, address or CamelCase name.

    Such a query is a lookup: the exact token decides, and embeddings blur exactly these
    (ERR-4031 and ERR-4013 embed alike). Long prose questions never count, even when they
    mention a number.
    """
    if len(text.split()) > PROSE_WORDS:
        return False
    return any(_IDENTIFIER.search(t) for t in _TOKEN.findall(text))


@dataclass(frozen=True)
class ParsedQuery:
    """What to score (all positive words), what to require and what to exclude."""

    scored: str
    phrases: tuple[str, ...]
    excluded: tuple[str, ...]


def parse_query(text: str) -> ParsedQuery:
    if len(text.split()) > PROSE_WORDS:
        return ParsedQuery(scored=" ".join(text.replace('"', " ").split()), phrases=(), excluded=())
    phrases = tuple(p.strip() for p in _PHRASE.findall(text) if p.strip())
    rest = _PHRASE.sub(" ", text)
    # An unmatched quote is just a character: drop it so it does not glue words.
    rest = rest.replace('"', " ")
    excluded = tuple(_EXCLUDED.findall(rest))
    rest = _EXCLUDED.sub(" ", rest)
    rest = _OR.sub(" ", rest)
    scored = " ".join([*phrases, rest]).strip()
    return ParsedQuery(scored=" ".join(scored.split()), phrases=phrases, excluded=excluded)


__all__ = ["PROSE_WORDS", "ParsedQuery", "looks_up_identifier", "parse_query"]
