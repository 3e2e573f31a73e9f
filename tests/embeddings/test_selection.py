"""auto picks the fastest backend that agrees with fp32, and falls back where it cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.embeddings import factory
from server.embeddings.base import backend_of, query_backend_of
from server.embeddings.cpu import cpu_flags, has_native_bf16
from server.embeddings.factory import load_embedder
from server.embeddings.selection import Capabilities, choose
from server.settings import EmbeddingSettings

EVERYTHING = Capabilities(native_bf16=True, onnxruntime=True)
NO_BF16 = Capabilities(native_bf16=False, onnxruntime=True)
TORCH_ONLY = Capabilities(native_bf16=False, onnxruntime=False)


def test_auto_prefers_bf16_for_batches_and_onnx_for_queries() -> None:
    assert choose("auto", "ingest", EVERYTHING).backend == "torch-bf16"
    assert choose("auto", "query", EVERYTHING).backend == "onnx-fp32"


def test_auto_falls_back_without_native_bf16() -> None:
    ingest = choose("auto", "ingest", NO_BF16)
    assert (ingest.backend, *ingest.fallbacks) == ("onnx-fp32", "torch-fp32")
    assert "torch-bf16" in ingest.reason  # said why bf16 was skipped
    assert "torch-bf16" not in choose("auto", "query", NO_BF16).fallbacks
    assert choose("auto", "ingest", TORCH_ONLY).backend == "torch-fp32"
    assert choose("auto", "query", TORCH_ONLY).backend == "torch-fp32"


def test_auto_never_picks_int8_and_explicit_choices_are_kept() -> None:
    for caps in (EVERYTHING, NO_BF16, TORCH_ONLY):
        for role in ("ingest", "query"):
            choice = choose("auto", role, caps)
            assert "onnx-int8" not in (choice.backend, *choice.fallbacks)
            assert "onnx-int8-ffn" not in (choice.backend, *choice.fallbacks)
    assert choose("onnx-int8", "ingest", TORCH_ONLY).backend == "onnx-int8"


def test_bf16_detection_reads_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n")
    assert "avx512_bf16" in cpu_flags(cpuinfo)
    assert has_native_bf16(cpu_flags(cpuinfo))
    assert has_native_bf16({"avx512f", "amx_bf16"})
    assert not has_native_bf16({"avx2", "avx512f", "avx512_vnni"})


def test_load_without_bf16_uses_onnx_for_both_roles(emb_settings: EmbeddingSettings) -> None:
    embedder = load_embedder(emb_settings, caps=NO_BF16)
    assert backend_of(embedder) == "onnx-fp32"  # one backend, no routing
    assert embedder.embed_documents(["a", "b"]).shape == (2, 384)


@pytest.mark.skipif(not has_native_bf16(), reason="this CPU has no native bf16")
def test_load_with_bf16_routes_queries_and_chunks(emb_settings: EmbeddingSettings) -> None:
    embedder = load_embedder(emb_settings, caps=EVERYTHING)
    assert backend_of(embedder) == "query=onnx-fp32,ingest=torch-bf16"
    assert query_backend_of(embedder) == "onnx-fp32"
    text = "Vacation policy for new employees"
    query, doc = embedder.embed_query(text), embedder.embed_documents([text])[0]
    assert float(query @ doc) >= 0.999  # bf16 chunks, fp32 query: the same direction


def test_a_process_that_embeds_only_queries_loads_only_their_backend(
    emb_settings: EmbeddingSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kb serve worker: on a bf16 machine auto would add torch-bf16 for ingestion.
    asked: list[str] = []
    real = factory.load_backend

    def recording(backend: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(backend)
        return real(backend, *args, **kwargs)

    monkeypatch.setattr(factory, "load_backend", recording)
    embedder = load_embedder(emb_settings, caps=EVERYTHING, queries_only=True)
    assert asked == ["onnx-fp32"]
    assert backend_of(embedder) == "onnx-fp32"  # not routed: no ingestion backend
    assert embedder.embed_documents(["a"]).shape == (1, 384)  # still works if ever asked
    asked.clear()
    both = load_embedder(emb_settings, caps=NO_BF16)
    assert asked == ["onnx-fp32"] and backend_of(both) == "onnx-fp32"


def test_bf16_that_disagrees_gives_way_under_auto(
    emb_settings: EmbeddingSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inject an impossible bar: the bf16 probe check must fail and auto must move on.
    monkeypatch.setattr(factory, "MIN_BF16_COSINE", 1.01)
    settings = emb_settings.model_copy(update={"query_backend": "onnx-fp32"})
    embedder = load_embedder(settings, caps=EVERYTHING)
    assert backend_of(embedder) == "onnx-fp32"
    assert np.isclose(np.linalg.norm(embedder.embed_query("x")), 1.0, atol=1e-5)
