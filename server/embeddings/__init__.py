"""Text embeddings: a small interface and the sentence-transformers implementation."""

from server.embeddings.base import AsyncEmbedder, Embedder
from server.embeddings.factory import load_embedder

__all__ = ["AsyncEmbedder", "Embedder", "load_embedder"]
