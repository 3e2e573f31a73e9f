"""The query-vector LRU in AsyncEmbedder, over the real ONNX model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from server.embeddings.base import AsyncEmbedder, Embedder, Vectors
from server.embeddings.query_cache import QueryCache, cache_key
from server.settings import EmbeddingSettings


class Counting:
    """The real embedder, counting how often queries reach the model."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.queries = 0
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.max_tokens = inner.max_tokens
        self.backend = "onnx-fp32"

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        self.queries += 1
        return self.inner.embed_query(text)


@pytest.mark.anyio
async def test_hits_return_identical_vectors_and_misses_compute(onnx_fp32: Embedder) -> None:
    model = Counting(onnx_fp32)
    wrapper = AsyncEmbedder(model, cache_size=8)
    try:
        first = await wrapper.embed_query("vacation policy")
        again = await wrapper.embed_query("  vacation   policy ")  # same word pieces
        other = await wrapper.embed_query("Vacation policy")  # different text: a miss
    finally:
        wrapper.close()
    assert model.queries == 2
    assert again is first
    np.testing.assert_array_equal(first, onnx_fp32.embed_query("vacation policy"))
    assert not np.array_equal(first, other) or model.queries == 2
    assert wrapper.cache is not None and (wrapper.cache.hits, wrapper.cache.misses) == (1, 2)
    with pytest.raises(ValueError):
        first[0] = 0.0  # cached vectors are read-only: no caller can alter another's


@pytest.mark.anyio
async def test_size_zero_disables_the_cache(onnx_fp32: Embedder) -> None:
    model = Counting(onnx_fp32)
    wrapper = AsyncEmbedder(model, cache_size=0)
    try:
        await wrapper.embed_query("q")
        await wrapper.embed_query("q")
    finally:
        wrapper.close()
    assert wrapper.cache is None and model.queries == 2


def test_lru_evicts_the_least_recently_used() -> None:
    cache = QueryCache(2)
    vec = np.ones(3, dtype=np.float32)
    for text in ("a", "b"):
        cache.put(cache_key("m", text), vec)
    assert cache.get(cache_key("m", "a")) is not None  # "a" is now the most recent
    cache.put(cache_key("m", "c"), vec)
    assert cache.get(cache_key("m", "b")) is None and len(cache) == 2
    assert cache_key("model|onnx-fp32", "x") != cache_key("model|torch-bf16", "x")


@pytest.mark.anyio
async def test_concurrent_queries_on_several_threads_match_serial(onnx_fp32: Embedder) -> None:
    settings = EmbeddingSettings(query_threads=3, query_cache_size=0)
    wrapper = AsyncEmbedder.configured(onnx_fp32, settings)
    texts = [f"question number {i} about expense reports" for i in range(24)]
    try:
        vectors = await asyncio.gather(*(wrapper.embed_query(t) for t in texts))
    finally:
        wrapper.close()
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, onnx_fp32.embed_query(text), atol=1e-6)
