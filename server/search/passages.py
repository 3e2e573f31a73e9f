"""The passage of a hit: whole sentences of the chunk around the best match, plain text.

The sentence that holds the most distinct matched words is the anchor; sentences after
and then before it are added while the passage fits ``max_chars``. A hit no query word
matched (a semantic hit) shows the chunk from its start. Only a single sentence longer
than the budget is cut, at a word boundary, with an ellipsis.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator

ELLIPSIS = "…"
HIGHLIGHT = "**"
_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? (or a blank line) followed by space and not a lower-case letter,
# so "e.g. this" and "v2.3.1 is" do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^a-z\s])|\n\s*\n")


def split_sentences(text: str) -> list[str]:
    return [_tidy(p) for p in _raw_sentences(text)]


def _raw_sentences(text: str) -> list[str]:
    # As written: only the few a passage shows have their spaces tidied (most of the time
    # building passages went to tidying sentences that were only searched for words).
    return [p for p in _SENTENCE_END.split(text) if p and not p.isspace()]


def _tidy(sentence: str) -> str:
    return _SPACES.sub(" ", sentence).strip()


# The index tokeniser's tokens (``kb_bm25_terms``, and the words ``matched_words``
# returns): runs of letters and digits, joined by single ``- _ . / @ : + #``.
_TOKEN = re.compile(r"[^\W_]+(?:[-_./@:+#][^\W_]+)*")


class MatchedWords:
    """Where a hit's matched words are in its text: whole tokens, compared case-blind.

    The words are tokens of the chunk as the index tokeniser cut them (``ERR-4031``,
    ``pg_dump``, ``running``), so the text is cut the same way and each token looked up:
    ``dump`` is never found inside ``pg_dump``. One scan of the text whatever the number
    of words; before, a regular expression alternating every hit's words was compiled per
    search and tried at every position (passages and highlights of 100 CISI hits: 11.1 ms
    a search, 6.9 ms now with the sentences tidied lazily).
    """

    def __init__(self, words: Collection[str]) -> None:
        self._wanted = frozenset(w.lower() for w in words)

    def _matches(self, text: str) -> Iterator[re.Match[str]]:
        if not self._wanted:
            return
        for found in _TOKEN.finditer(text):
            if found.group(0).lower() in self._wanted:
                yield found

    def _distinct_in(self, sentence: str) -> int:
        return len(self._wanted.intersection(_TOKEN.findall(sentence.lower())))

    def passage(self, text: str, max_chars: int) -> str:
        """Whole sentences of ``text`` around the best match, at most ``max_chars`` long."""
        sentences = _raw_sentences(text)
        if not sentences:
            return ""
        anchor = 0
        if self._wanted:
            counts = [self._distinct_in(s) for s in sentences]
            anchor = max(range(len(sentences)), key=lambda i: (counts[i], -i))
        return _around(sentences, anchor, max_chars)

    def highlight(self, passage: str) -> str:
        """The passage with each matched word marked ``**like this**``."""
        out: list[str] = []
        at = 0
        for found in self._matches(passage):
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


def _around(raw: list[str], anchor: int, max_chars: int) -> str:
    """The anchor sentence, then neighbours after and before it while they fit (``raw``:
    the sentences as written; each is tidied when first measured)."""
    tidy: dict[int, str] = {}

    def sentence(i: int) -> str:
        found = tidy.get(i)
        if found is None:
            found = tidy[i] = _tidy(raw[i])
        return found

    if len(sentence(anchor)) > max_chars:
        return _cut(sentence(anchor), max_chars)
    lo, hi, size = anchor, anchor, len(sentence(anchor))
    grew = True
    while grew:
        grew = False
        for side in (hi + 1, lo - 1):
            if 0 <= side < len(raw) and size + 1 + len(sentence(side)) <= max_chars:
                size += 1 + len(sentence(side))
                lo, hi = min(lo, side), max(hi, side)
                grew = True
                break
    return " ".join(sentence(i) for i in range(lo, hi + 1))


def make_passage(text: str, matched: Collection[str], max_chars: int) -> str:
    """Whole sentences of ``text`` around the best match, at most ``max_chars`` long."""
    return MatchedWords(matched).passage(text, max_chars)


def highlight(passage: str, matched: Collection[str]) -> str:
    """The passage with every matched word marked ``**like this**``."""
    return MatchedWords(matched).highlight(passage)


__all__ = [
    "ELLIPSIS",
    "HIGHLIGHT",
    "MatchedWords",
    "highlight",
    "make_passage",
    "split_sentences",
]
