"""Split a parsed document into chunks that fit the embedding model's window.

Each chunk is embedded as ``heading + "\\n\\n" + text`` where ``heading`` is the breadcrumb
of the document title and the section's heading path ("Handbook > Leave > Sick leave").
The breadcrumb gives every chunk its context (a paragraph that says "ten days" is about
sick leave only because of its headings), so it counts against the same token budget:
``count_tokens(heading + text) <= embedder.max_tokens`` for every chunk, with tokens
counted by the model's own tokenizer (via :meth:`Embedder.count_tokens`). The chunk
row keeps the breadcrumb in its ``heading`` column and the body in ``text``.

Splitting is semchunk's: recursive on paragraphs, lines, sentences, then words, so chunks
end at natural boundaries. Adjacent sections under the same headings are merged first, so
a document parsed as many tiny paragraphs does not become many tiny chunks.

semchunk counts candidate merges many times over (about five counts per chunk); running
the tokenizer on each was most of the reader thread's CPU (3.5 of its 3.7 s for 1,329
chunks), CPU that on two cores is taken from the model. While splitting, a text is
counted as the sum of its whitespace-separated words' counts, each word tokenised once
(a cache): for WordPiece (BERT, MiniLM), which never lets a token cross whitespace, that
sum is the exact count. Every finished chunk is still counted whole by the real
tokenizer and the budget shrunk if one does not fit, so a tokenizer for which the sum is
only close still never yields an oversized chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from semchunk.semchunk import Chunker as SemChunker
from semchunk.semchunk import chunkerify

from connectors.base import Section, SourceDocument
from server.embeddings.base import Embedder

HEADING_SEPARATOR = " > "
BODY_SEPARATOR = "\n\n"
# A heading breadcrumb may take at most this share of the budget; longer ones keep their
# innermost headings, so the body always has room.
MAX_HEADING_SHARE = 0.25
# Characters the longest word piece may hold; lets semchunk count long texts by a prefix.
MAX_TOKEN_CHARS = 32
TOKEN_CACHE_SIZE = 32_768
WORD_CACHE_SIZE = 65_536


@dataclass(frozen=True)
class ChunkText:
    """One chunk: its breadcrumb, its body and the tokens the embedded form holds."""

    ordinal: int
    heading: str
    text: str
    token_count: int

    @property
    def embedding_text(self) -> str:
        return f"{self.heading}{BODY_SEPARATOR}{self.text}" if self.heading else self.text


class Chunker:
    """Chunks documents for one embedder; thread-safe (pure functions plus an LRU cache)."""

    def __init__(self, embedder: Embedder, max_tokens: int | None = None) -> None:
        self.max_tokens = min(max_tokens or embedder.max_tokens, embedder.max_tokens)
        # One bounded cache shared by every budget: semchunk probes overlapping pieces.
        self._count: Callable[[str], int] = lru_cache(maxsize=TOKEN_CACHE_SIZE)(
            embedder.count_tokens
        )
        self._count_word: Callable[[str], int] = lru_cache(maxsize=WORD_CACHE_SIZE)(
            embedder.count_tokens
        )
        self._chunkers: dict[int, SemChunker] = {}

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def estimate_tokens(self, text: str) -> int:
        """The sum of ``text``'s words' token counts: exact where tokens never cross
        whitespace (WordPiece), and only used where the whole chunk is counted after."""
        count = self._count_word
        return sum(count(word) for word in text.split())

    def chunk_document(self, document: SourceDocument) -> list[ChunkText]:
        out: list[ChunkText] = []
        for headings, body in _merged_sections(document.sections):
            heading = self._heading(document.title, headings)
            for text, tokens in self._split(heading, body):
                out.append(ChunkText(len(out), heading, text, tokens))
        return out

    def _heading(self, title: str, headings: tuple[str, ...]) -> str:
        parts = [h.strip() for h in headings if h.strip()]
        title = title.strip()
        if title and (not parts or parts[0] != title):
            parts.insert(0, title)
        limit = int(self.max_tokens * MAX_HEADING_SHARE)
        # Drop outer headings first: the innermost one says most about the body.
        while parts and self._count(HEADING_SEPARATOR.join(parts)) > limit:
            if len(parts) == 1:
                return _truncate_to(parts[0], limit, self._count)
            parts.pop(0)
        return HEADING_SEPARATOR.join(parts)

    def _split(self, heading: str, body: str) -> Iterable[tuple[str, int]]:
        body = body.strip()
        if not body:
            return
        budget = self.max_tokens - (self._count(heading + BODY_SEPARATOR) if heading else 0)
        while budget > 0:
            split: list[str] = cast(list[str], self._chunker(budget)(body))
            pieces = [p for p in split if p.strip()]
            counted = [(p, self._embedded_tokens(heading, p)) for p in pieces]
            if all(tokens <= self.max_tokens for _, tokens in counted):
                yield from counted
                return
            # Tokenisers need not be additive across the join; shrink and try again.
            budget -= max(1, budget // 16)
        raise ValueError("heading leaves no room for text")  # unreachable: heading is capped

    def _embedded_tokens(self, heading: str, text: str) -> int:
        return self._count(f"{heading}{BODY_SEPARATOR}{text}" if heading else text)

    def _chunker(self, budget: int) -> SemChunker:
        chunker = self._chunkers.get(budget)
        if chunker is None:
            chunker = chunkerify(
                self.estimate_tokens, budget, max_token_chars=MAX_TOKEN_CHARS, memoize=False
            )
            self._chunkers[budget] = chunker
        return chunker


def _merged_sections(sections: Iterable[Section]) -> list[tuple[tuple[str, ...], str]]:
    merged: list[tuple[tuple[str, ...], str]] = []
    for section in sections:
        if not section.text.strip():
            continue
        if merged and merged[-1][0] == section.headings:
            merged[-1] = (section.headings, merged[-1][1] + BODY_SEPARATOR + section.text)
        else:
            merged.append((section.headings, section.text))
    return merged


def _truncate_to(text: str, limit: int, count: Callable[[str], int]) -> str:
    words = text.split()
    while words and count(" ".join(words)) > limit:
        words.pop()
    return " ".join(words)


__all__ = ["ChunkText", "Chunker"]
