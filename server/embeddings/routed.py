"""One model, two backends: queries on the lowest-latency one, chunks on the fastest batch one."""

from __future__ import annotations

from collections.abc import Sequence

from server.embeddings.base import Embedder, Vectors, backend_of, query_embedding


class RoutedEmbedder:
    """Implements :class:`Embedder` by sending queries and documents to different backends.

    Both run the same weights; they may differ in arithmetic (bf16 against fp32), which is
    why the benchmark measures retrieval agreement for the pair, not only for each backend.
    Token counting follows the documents side, since it decides how chunks are cut.
    """

    def __init__(self, *, query: Embedder, documents: Embedder) -> None:
        if query.dimensions != documents.dimensions:
            raise ValueError("query and document backends disagree on dimensions")
        self.query = query
        self.documents = documents

    @property
    def name(self) -> str:
        return self.documents.name

    @property
    def backend(self) -> str:
        return f"query={backend_of(self.query)},ingest={backend_of(self.documents)}"

    @property
    def query_backend(self) -> str:
        return backend_of(self.query)

    @property
    def dimensions(self) -> int:
        return self.documents.dimensions

    @property
    def max_tokens(self) -> int:
        return self.documents.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.documents.count_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.documents.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.query.embed_query(text)

    def embed_query_wide(self, text: str) -> Vectors:
        """The query backend's :meth:`embed_query_wide` where it has one."""
        return query_embedding(self.query, wide=True)(text)


__all__ = ["RoutedEmbedder"]
