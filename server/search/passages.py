"""The passage of a hit: whole sentences of the chunk around the best match, plain text.

The sentence that holds the most distinct matched words is the anchor; sentences after
and then before it are added while the passage fits ``max_chars``. A hit no query word
matched (a semantic hit) shows the chunk from its start. Only a single sentence longer
than the budget is cut, at a word boundary, with an ellipsis.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection

ELLIPSIS = "…"
HIGHLIGHT = "**"
_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? (or a blank line) followed by space and not a lower-case letter,
# so "e.g. this" and "v2.3.1 is" do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^a-z\s])|\n\s*\n")


def split_sentences(text: str) -> list[str]:
    parts = (_SPACES.sub(" ", p).strip() for p in _SENTENCE_END.split(text))
    return [p for p in parts if p]


def _word_pattern(words: Collection[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    return _compiled_word_pattern(frozenset(words))


# A hit's passage and its highlight use the same words, and the hits of one query mostly
# share them: compiled once, not twice per hit (re's own cache is keyed by pattern text,
# which has to be built first, and holds few).
@functools.lru_cache(maxsize=256)
def _compiled_word_pattern(words: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    # Whole tokens only: not inside a longer run of letters, digits or joiners.
    return re.compile(rf"(?<![\w@.-])(?:{alternatives})(?![\w@-]|\.\w)", re.IGNORECASE)


def _cut(sentence: str, max_chars: int) -> str:
    budget = max(1, max_chars - len(ELLIPSIS))
    cut = sentence[:budget]
    space = cut.rfind(" ")
    if space > budget // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + ELLIPSIS


def make_passage(text: str, matched: Collection[str], max_chars: int) -> str:
    """Whole sentences of ``text`` around the best match, at most ``max_chars`` long."""
    sentences = split_sentences(text)
    if not sentences:
        return ""
    pattern = _word_pattern(matched)
    anchor = 0
    if pattern is not None:
        counts = [len({m.lower() for m in pattern.findall(s)}) for s in sentences]
        anchor = max(range(len(sentences)), key=lambda i: (counts[i], -i))
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


def highlight(passage: str, matched: Collection[str]) -> str:
    """The passage with every matched word marked ``**like this**``."""
    pattern = _word_pattern(matched)
    if pattern is None:
        return passage
    return pattern.sub(lambda m: f"{HIGHLIGHT}{m.group(0)}{HIGHLIGHT}", passage)


__all__ = ["ELLIPSIS", "HIGHLIGHT", "highlight", "make_passage", "split_sentences"]
