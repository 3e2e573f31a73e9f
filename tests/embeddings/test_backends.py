"""Every backend returns what sentence-transformers' fp32 pipeline returns, within its bound."""

from __future__ import annotations

import numpy as np
import pytest

from server.embeddings.base import Embedder, backend_of
from server.embeddings.cpu import has_native_bf16
from server.embeddings.factory import load_backend
from server.embeddings.onnx_export import MIN_COSINE
from server.embeddings.onnx_runtime import WIDE_FROM_TOKENS, OnnxEmbedder
from server.embeddings.probes import min_cosine
from server.settings import EmbeddingSettings

SAMPLES = [
    "Expense reports are due on the fifth working day of each month.",
    "How do I reset my password?",
    "  Robots   need\toil.  ",
    "x",
    # Longer than the 256-token window: every backend must truncate where torch does.
    "Retrieval effectiveness of controlled vocabularies in library catalogues. " * 40,
    "Le catalogue de la bibliothèque utilise un vocabulaire contrôlé pour l'indexation.",
]


def both_paths(embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
    docs = embedder.embed_documents(SAMPLES)
    queries = np.vstack([embedder.embed_query(t) for t in SAMPLES])
    return docs, queries


def test_onnx_fp32_reproduces_sentence_transformers(
    torch_fp32: Embedder, onnx_fp32: Embedder
) -> None:
    reference = torch_fp32.embed_documents(SAMPLES)
    docs, queries = both_paths(onnx_fp32)
    assert backend_of(onnx_fp32) == "onnx-fp32"
    assert docs.dtype == np.float32 and docs.shape == (len(SAMPLES), 384)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # Same graph, same arithmetic: equal to rounding, in a padded batch and one by one.
    assert min_cosine(docs, reference) >= 0.9999
    assert min_cosine(queries, reference) >= 0.9999


def test_onnx_token_counting_matches_torch(torch_fp32: Embedder, onnx_fp32: Embedder) -> None:
    for text in SAMPLES:
        assert onnx_fp32.count_tokens(text) == torch_fp32.count_tokens(text)
    assert onnx_fp32.max_tokens == torch_fp32.max_tokens == 254


def test_a_long_query_embedded_wide_uses_every_core_and_gives_the_same_vector(
    torch_fp32: Embedder, emb_settings: EmbeddingSettings
) -> None:
    onnx = load_backend("onnx-fp32", emb_settings)  # its own: no batch session made yet
    assert isinstance(onnx, OnnxEmbedder)
    short, long = SAMPLES[1], SAMPLES[4]
    assert onnx.count_tokens(short) + 2 < WIDE_FROM_TOKENS <= onnx.count_tokens(long)
    np.testing.assert_allclose(onnx.embed_query_wide(short), onnx.embed_query(short), atol=1e-6)
    assert onnx._batch_session is None  # short: stayed on the one-thread session
    wide = onnx.embed_query_wide(long)
    assert onnx._batch_session is not None  # long: on the session with every core
    np.testing.assert_allclose(wide, onnx.embed_query(long), atol=1e-5)
    assert min_cosine(wide[None, :], torch_fp32.embed_documents([long])) >= 0.9999


@pytest.mark.skipif(not has_native_bf16(), reason="this CPU has no native bf16 (emulated: slow)")
def test_torch_bf16_agrees_with_fp32(torch_fp32: Embedder, emb_settings: EmbeddingSettings) -> None:
    bf16 = load_backend("torch-bf16", emb_settings)
    docs, queries = both_paths(bf16)
    reference = torch_fp32.embed_documents(SAMPLES)
    assert min_cosine(docs, reference) >= 0.99
    assert min_cosine(queries, reference) >= 0.99
    assert getattr(bf16, "agreement", 0.0) >= 0.99


def test_onnx_int8_is_close_but_looser(
    torch_fp32: Embedder, emb_settings: EmbeddingSettings
) -> None:
    """int8 is lossy by design (auto never picks it): a looser bound, checked all the same."""
    int8 = load_backend("onnx-int8", emb_settings)
    docs, queries = both_paths(int8)
    reference = torch_fp32.embed_documents(SAMPLES)
    assert min_cosine(docs, reference) >= 0.95
    assert min_cosine(queries, reference) >= 0.95
    assert min_cosine(docs, reference) < 0.9999  # it really is the quantised graph


def test_onnx_int8_ffn_stays_within_its_export_bar(
    torch_fp32: Embedder, emb_settings: EmbeddingSettings
) -> None:
    """int8 in the feed-forward layers only: auto may pick it, so it must keep the export's
    bar (onnx_export.MIN_COSINE) on texts the probe check never saw, on both paths."""
    ffn = load_backend("onnx-int8-ffn", emb_settings)
    assert backend_of(ffn) == "onnx-int8-ffn"
    docs, queries = both_paths(ffn)
    reference = torch_fp32.embed_documents(SAMPLES)
    assert min_cosine(docs, reference) >= MIN_COSINE["int8-ffn"]
    assert min_cosine(queries, reference) >= MIN_COSINE["int8-ffn"]
    assert min_cosine(docs, reference) < 0.9999  # it really is the quantised graph
