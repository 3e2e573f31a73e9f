"""Chunks fit the model's window including their heading breadcrumb, counted by its tokenizer."""

from __future__ import annotations

from connectors.base import Section, SourceDocument
from server.embeddings.base import Embedder
from server.ingest.chunking import Chunker

PARAGRAPH = (
    "Employees accrue annual leave monthly. Requests go through the HR portal and need the "
    "approval of a manager. Unused days expire at the end of March of the following year. "
)


def doc(*sections: Section, title: str = "Employee Handbook") -> SourceDocument:
    return SourceDocument("x", "file:///x", title, "text/markdown", sections, "hr")


def test_every_chunk_fits_the_window_with_its_heading(embedder: Embedder) -> None:
    chunker = Chunker(embedder)
    long_heading = tuple(f"Chapter {i} about a rather verbose subject heading" for i in range(12))
    chunks = chunker.chunk_document(
        doc(
            Section(PARAGRAPH * 40, ("Leave", "Annual leave")),
            Section("supercalifragilistic" * 300, ("Words",)),  # one huge "word"
            Section(PARAGRAPH * 5, long_heading),
        )
    )
    assert len(chunks) >= 8
    for c in chunks:
        assert embedder.count_tokens(c.embedding_text) <= embedder.max_tokens == 254
        assert c.token_count == embedder.count_tokens(c.embedding_text)
        assert c.text.strip()
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[0].heading == "Employee Handbook > Leave > Annual leave"
    # A breadcrumb too long for its share keeps the innermost headings.
    deep = [c for c in chunks if "Chapter 11" in c.heading]
    assert deep and all("Chapter 0 " not in c.heading for c in deep)
    # No text is lost: every sentence of the first section is in some chunk.
    joined = " ".join(c.text for c in chunks)
    assert joined.count("Unused days expire") >= 45


def test_small_sections_under_one_heading_merge_and_empty_ones_vanish(embedder: Embedder) -> None:
    chunker = Chunker(embedder)
    chunks = chunker.chunk_document(
        doc(
            Section("First line.", ("Intro",)),
            Section("Second line.", ("Intro",)),
            Section("   ", ("Empty",)),
            Section("Other.", ("Employee Handbook", "Other")),
        )
    )
    assert [(c.heading, c.text) for c in chunks] == [
        ("Employee Handbook > Intro", "First line.\n\nSecond line."),
        ("Employee Handbook > Other", "Other."),  # the title is not repeated
    ]
    assert chunker.chunk_document(doc(Section(""))) == []


MIXED = (
    "Die Mitarbeiterinnen und Mitarbeiter beantragen Urlaub über das Personalportal; "
    "Überstunden (max. 10 h/Woche) werden quartalsweise ausgeglichen. "
    "従業員は人事ポータルから休暇を申請します。承認には上司の確認が必要です。 "
    "Naïve café-owners' résumés: e-mail them to hr@example.com, cc: ops/it [urgent]! "
    "Version 2.3.1-rc4 (build #5521) fixed the 'double-booking' bug — finally... "
)


class ExactlyCounted(Chunker):
    """The same chunker with every candidate counted whole by the tokenizer."""

    def estimate_tokens(self, text: str) -> int:
        return self.count_tokens(text)


def test_counting_words_chunks_exactly_as_counting_whole_texts(embedder: Embedder) -> None:
    # WordPiece never lets a token cross whitespace, so the sum of the words' counts is the
    # text's count and semchunk makes the very same cuts, in any script or punctuation.
    document = doc(
        Section(PARAGRAPH * 30, ("Leave",)),
        Section(MIXED * 25, ("Mixed", "Scripts")),
        Section("\n".join(f"- item {i}: {MIXED[:80]}" for i in range(60)), ("Lists",)),
    )
    fast = Chunker(embedder).chunk_document(document)
    exact = ExactlyCounted(embedder).chunk_document(document)
    assert len(fast) >= 10
    assert fast == exact
    for text in (PARAGRAPH, MIXED, MIXED * 3):
        assert Chunker(embedder).estimate_tokens(text) == embedder.count_tokens(text)


class SpacesCost:
    """A tokenizer for which words do not add up: every space is a token of its own."""

    max_tokens = 60
    dimensions = 4
    name = "spaces-cost"

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + text.count(" ")


def test_a_tokenizer_whose_words_do_not_add_up_still_gets_chunks_that_fit() -> None:
    # The word sum undercounts this tokenizer by half: the whole-chunk count after
    # splitting catches it and the budget shrinks until every chunk fits.
    tokenizer = SpacesCost()
    chunker = Chunker(tokenizer)  # type: ignore[arg-type]
    chunks = chunker.chunk_document(doc(Section(PARAGRAPH * 10, ("Leave",))))
    assert chunker.estimate_tokens(PARAGRAPH) < tokenizer.count_tokens(PARAGRAPH)
    assert len(chunks) > 4
    for c in chunks:
        assert c.token_count == tokenizer.count_tokens(c.embedding_text) <= 60
    assert " ".join(c.text for c in chunks).count("Unused days expire") == 10
