"""The embedding model, loaded on a background thread while ``kb mcp`` already answers.

Desktop hosts give a stdio server about a minute to answer ``initialize``; importing torch
and loading the model can take longer than that on a busy laptop. ``BackgroundModel``
starts loading at once and satisfies the :class:`~server.embeddings.Embedder` protocol:
the handshake, tool listing and prompts answer immediately, and the first search waits
for the model (on the embedder's worker thread, never on the event loop).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future

from server.embeddings import Embedder, load_embedder
from server.embeddings.base import Vectors, query_embedding
from server.settings import EmbeddingSettings


class BackgroundModel:
    """Implements ``Embedder`` by delegating to a model that is still loading."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self._settings = settings
        self._loaded: Future[Embedder] = Future()
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            self._loaded.set_result(load_embedder(self._settings))
        except BaseException as exc:  # surfaced on first use, as the load error itself
            self._loaded.set_exception(exc)

    def model(self) -> Embedder:
        """The loaded model; blocks until it is there (call off the event loop)."""
        return self._loaded.result()

    @property
    def name(self) -> str:
        return self._settings.model

    @property
    def dimensions(self) -> int:
        return self._settings.dimensions

    @property
    def max_tokens(self) -> int:
        return self.model().max_tokens

    def count_tokens(self, text: str) -> int:
        return self.model().count_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.model().embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.model().embed_query(text)

    def embed_query_wide(self, text: str) -> Vectors:
        return query_embedding(self.model(), wide=True)(text)


__all__ = ["BackgroundModel"]
