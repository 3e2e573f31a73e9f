"""Snippets: the passage of a hit that best matches the query, fit for a short preview.

Postgres ``ts_headline`` picks the fragments with the most query terms (with the same
stemming as the keyword index) and marks them ``**like this**``; this module asks for
fragments of a size that suits the configured length, then trims the result to exactly
that many characters without cutting a word or leaving a highlight open.
"""

from __future__ import annotations

import re

HIGHLIGHT = "**"
ELLIPSIS = "…"
_FRAGMENT_DELIMITER = f" {ELLIPSIS} "
_SPACES = re.compile(r"\s+")
# ts_headline marks the parts of a compound word separately (**pg**_**dump**): join them.
_SPLIT_HIGHLIGHT = re.compile(r"\*\*([_./:@#-]{1,3})\*\*")
# Average English word plus its space, to turn a character budget into a word budget.
_CHARS_PER_WORD = 6


def headline_options(snippet_chars: int) -> str:
    """Options for ``ts_headline`` sized to ``snippet_chars``."""
    max_words = max(8, snippet_chars // _CHARS_PER_WORD)
    fragments = 2 if max_words >= 30 else 1
    per_fragment = max(6, max_words // fragments)
    return (
        f"StartSel={HIGHLIGHT}, StopSel={HIGHLIGHT}, MaxFragments={fragments}, "
        f"MaxWords={per_fragment}, MinWords={max(3, per_fragment // 2)}, "
        f'ShortWord=2, FragmentDelimiter="{_FRAGMENT_DELIMITER}"'
    )


def trim(text: str, max_chars: int) -> str:
    """Collapse whitespace and cut to ``max_chars`` at a word boundary, closing highlights."""
    flat = _SPLIT_HIGHLIGHT.sub(r"\1", _SPACES.sub(" ", text).strip())
    if len(flat) <= max_chars:
        return flat
    budget = max(1, max_chars - len(ELLIPSIS) - len(HIGHLIGHT))
    cut = flat[:budget]
    space = cut.rfind(" ")
    if space > budget // 2:
        cut = cut[:space]
    cut = cut.rstrip(" .,;:" + ELLIPSIS)
    # An odd number of markers means a highlight was cut open: close it.
    if cut.count(HIGHLIGHT) % 2 == 1:
        cut = cut.rstrip("*") if cut.endswith("*") else cut + HIGHLIGHT
    return cut + ELLIPSIS


def make_snippet(headline: str, text: str, max_chars: int) -> str:
    """The snippet of a hit: the headline if Postgres made one, else the chunk's start."""
    return trim(headline if headline.strip() else text, max_chars)


__all__ = ["ELLIPSIS", "HIGHLIGHT", "headline_options", "make_snippet", "trim"]
