"""The passage of a hit: whole sentences of the chunk around the best match, plain text.

The sentence that holds the most distinct matched words is the anchor; sentences after
and then before it are added while the passage fits ``max_chars``. A hit no query word
matched (a semantic hit) shows the chunk from its start. Only a single sentence longer
than the budget is cut, at a word boundary, with an ellipsis.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Iterator

ELLIPSIS = "…"
HIGHLIGHT = "**"
_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? (or a blank line) followed by space and not a lower-case letter,
# so "e.g. this" and "v2.3.1 is" do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^a-z\s])|\n\s*\n")


def split_sentences(text: str) -> list[str]:
    parts = (_SPACES.sub(" ", p).strip() for p in _SENTENCE_END.split(text))
    return [p for p in parts if p]


@functools.lru_cache(maxsize=256)
def _compiled_word_pattern(words: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    # Whole tokens only: not inside a longer run of letters, digits or joiners.
    return re.compile(rf"(?<![\w@.-])(?:{alternatives})(?![\w@-]|\.\w)", re.IGNORECASE)


class MatchedWords:
    """The words a query matched in the hits of one search, as one compiled pattern.

    Each hit has its own set of matched words, and compiling a pattern per hit was the
    largest single cost of building passages (Python's regular-expression compiler, a few
    hundred microseconds a pattern, about four per search). One pattern over the union of
    the hits' words finds, in one hit's text, exactly what that hit's own pattern would once
    each match is kept only if it is one of the hit's words: the alternatives match whole
    tokens only, and whether a token matched depends on the token and the query, not on the
    hit (the words come from the same tokeniser), so another hit's longer word never covers
    one of this hit's.
    """

    def __init__(self, per_hit: Iterable[Collection[str]]) -> None:
        union = frozenset(w for words in per_hit for w in words)
        self._pattern = _compiled_word_pattern(union) if union else None

    def _matches(self, text: str, words: Collection[str]) -> Iterator[re.Match[str]]:
        if self._pattern is None or not words:
            return
        wanted = {w.lower() for w in words}
        for found in self._pattern.finditer(text):
            if found.group(0).lower() in wanted:
                yield found

    def passage(self, text: str, words: Collection[str], max_chars: int) -> str:
        """Whole sentences of ``text`` around the best match, at most ``max_chars`` long."""
        sentences = split_sentences(text)
        if not sentences:
            return ""
        anchor = 0
        if words and self._pattern is not None:
            counts = [len({m.group(0).lower() for m in self._matches(s, words)}) for s in sentences]
            anchor = max(range(len(sentences)), key=lambda i: (counts[i], -i))
        return _around(sentences, anchor, max_chars)

    def highlight(self, passage: str, words: Collection[str]) -> str:
        """The passage with each of ``words`` marked ``**like this**``."""
        out: list[str] = []
        at = 0
        for found in self._matches(passage, words):
            out += [passage[at : found.start()], HIGHLIGHT, found.group(0), HIGHLIGHT]
            at = found.end()
        if not out:
            return passage
        out.append(passage[at:])
        return "".join(out)


def _cut(sentence: str, max_chars: int) -> str:
    budget = max(1, max_chars - len(ELLIPSIS))
    cut = sentence[:budget]
    space = cut.rfind(" ")
    if space > budget // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + ELLIPSIS


def _around(sentences: list[str], anchor: int, max_chars: int) -> str:
    """The anchor sentence, then neighbours after and before it while they fit."""
    if len(sentences[anchor]) > max_chars:
        return _cut(sentences[anchor], max_chars)
    lo, hi, size = anchor, anchor, len(sentences[anchor])
    grew = True
    while grew:
        grew = False
        for side in (hi + 1, lo - 1):
            if 0 <= side < len(sentences) and size + 1 + len(sentences[side]) <= max_chars:
                size += 1 + len(sentences[side])
                lo, hi = min(lo, side), max(hi, side)
                grew = True
                break
    return " ".join(sentences[lo : hi + 1])


def make_passage(text: str, matched: Collection[str], max_chars: int) -> str:
    """Whole sentences of ``text`` around the best match, at most ``max_chars`` long."""
    return MatchedWords([matched]).passage(text, matched, max_chars)


def highlight(passage: str, matched: Collection[str]) -> str:
    """The passage with every matched word marked ``**like this**``."""
    return MatchedWords([matched]).highlight(passage, matched)


__all__ = [
    "ELLIPSIS",
    "HIGHLIGHT",
    "MatchedWords",
    "highlight",
    "make_passage",
    "split_sentences",
]
