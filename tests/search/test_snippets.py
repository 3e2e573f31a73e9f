"""Snippet trimming and caller-input parsing: pure functions, no database."""

from __future__ import annotations

import uuid

import pytest

from core.errors import InvalidRequest, NotFound
from server.search.snippets import ELLIPSIS, headline_options, make_snippet, trim
from server.search.validation import (
    DOCUMENT_NOT_FOUND,
    decode_cursor,
    encode_cursor,
    make_filters,
    parse_chunk_id,
    parse_document_id,
)


def test_trim_keeps_short_text_and_cuts_long_text_at_a_word() -> None:
    assert trim("  a   short\n text ", 50) == "a short text"
    cut = trim("alpha beta gamma delta epsilon zeta eta theta", 20)
    assert len(cut) <= 20 and cut.endswith(ELLIPSIS)
    assert cut.removesuffix(ELLIPSIS).split()[-1] in {"alpha", "beta", "gamma"}


def test_trim_never_leaves_a_highlight_open() -> None:
    text = "word " * 10 + "**highlighted phrase that goes on and on** tail"
    for n in range(20, 80, 3):
        out = trim(text, n)
        assert out.count("**") % 2 == 0 and len(out) <= n


def test_split_compound_highlights_are_joined_and_empty_headline_falls_back() -> None:
    assert trim("run **pg**_**dump** nightly", 100) == "run **pg_dump** nightly"
    assert make_snippet("", "the chunk text itself", 100) == "the chunk text itself"
    assert "MaxFragments=2" in headline_options(400)
    assert "MaxFragments=1" in headline_options(60)


def test_ids_and_cursors() -> None:
    ident = uuid.uuid4()
    assert parse_document_id(f"kb://documents/{ident}") == ident
    for bad in ("x", "kb://documents/", "1234", str(ident)[:-1]):
        with pytest.raises(NotFound, match=DOCUMENT_NOT_FOUND.split("(")[0].strip()):
            parse_document_id(bad)
    assert parse_chunk_id("42") == 42
    assert decode_cursor(encode_cursor("Zürich «notes»", ident)) == ("Zürich «notes»", ident)
    assert decode_cursor(None) is None


def test_filters_normalise_and_reject_nonsense() -> None:
    f = make_filters(sources="wiki", collections=["/hr/", "hr/"], modified_after="2024-01-01")
    assert f.sources == ("wiki",) and f.collections == ("hr",)
    assert f.modified_after is not None and f.modified_after.tzinfo is not None
    with pytest.raises(InvalidRequest, match="at most 100"):
        make_filters(sources=[str(i) for i in range(101)])
    with pytest.raises(InvalidRequest, match="empty"):
        make_filters(content_types=[" "])
