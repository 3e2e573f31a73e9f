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
