"""The real all-MiniLM-L6-v2, loaded offline from its PyPI package."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from server.embeddings import AsyncEmbedder, Embedder
from server.embeddings.factory import resolve_model_path


def test_vectors_are_384_dimensional_and_normalised(embedder: Embedder) -> None:
    vecs = embedder.embed_documents(["Expense reports are due monthly.", "Robots need oil."])
    assert vecs.shape == (2, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_paraphrase_is_closer_than_unrelated(embedder: Embedder) -> None:
    base, para, other = embedder.embed_documents(
        [
            "How do I reset my password?",
            "What are the steps to change a forgotten login password?",
            "The quarterly revenue grew by twelve percent in Europe.",
        ]
    )
    assert float(base @ para) > float(base @ other) + 0.3


def test_query_and_document_paths_agree(embedder: Embedder) -> None:
    # The default may embed queries and chunks on different backends (onnx-fp32 and
    # torch-bf16): the same text must still land in the same place.
    text = "Vacation policy for new employees"
    assert float(embedder.embed_query(text) @ embedder.embed_documents([text])[0]) >= 0.999


def test_token_counting_ignores_the_tokenizer_truncation(embedder: Embedder) -> None:
    # The packaged tokenizer truncates at 128; counting must see the whole text.
    assert embedder.count_tokens("word " * 600) >= 600
    assert embedder.max_tokens == 254


@pytest.mark.anyio
async def test_async_wrapper_runs_off_the_loop(embedder: Embedder) -> None:
    wrapper = AsyncEmbedder(embedder)
    try:
        vec = await wrapper.embed_query("hello")
        batch = await wrapper.embed_documents(["a", "b", "c"])
    finally:
        wrapper.close()
    assert vec.shape == (384,) and batch.shape == (3, 384)


def test_unknown_model_is_a_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="never downloaded"):
        resolve_model_path("sentence-transformers/all-mpnet-base-v2")
