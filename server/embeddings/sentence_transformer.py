"""sentence-transformers models loaded from local files only (never from a hub)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from server.embeddings.base import Vectors
from server.embeddings.probes import PROBE_TEXTS, min_cosine
from server.embeddings.tokenization import counting_tokenizer

log = logging.getLogger(__name__)


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded once, encoding in batches."""

    def __init__(
        self,
        model_path: Path,
        *,
        name: str,
        batch_size: int = 16,
        max_tokens: int = 254,
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        # Set before importing transformers so nothing tries the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._name = name
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._model: Any = SentenceTransformer(
            str(model_path), device="cpu", local_files_only=True, trust_remote_code=False
        )
        self._backend = f"torch-{precision}"
        self.agreement: float | None = None
        if precision == "bf16":
            # Measure what bf16 costs on probe texts before trusting it (auto falls back
            # to an exact backend when this is low).
            reference = self._encode(list(PROBE_TEXTS))
            self._model = self._model.to(torch.bfloat16)
            self.agreement = min_cosine(self._encode(list(PROBE_TEXTS)), reference)
        window = int(self._model.get_max_seq_length() or 256)
        self._model.max_seq_length = window
        # Chunks must fit the window with the two special tokens ([CLS], [SEP]).
        self._max_tokens = min(max_tokens, window - 2)
        self._tokenizer: Any = self._model.tokenizer
        self._counter: Any = _private_counter(self._tokenizer)
        dim = self._model.get_embedding_dimension()
        self._dimensions = int(dim) if dim else int(self.embed_query("probe").shape[0])
        log.info(
            "loaded embedding model %s (%d dimensions, %s)", name, self._dimensions, self._backend
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        # Count on a private copy of the Rust tokenizer with truncation (the package sets 128)
        # and padding off. Calling the shared tokenizer with truncation=False would switch
        # those settings on the object encode() uses, racing with a batch on another thread.
        counter = self._counter
        if counter is None:
            return len(
                self._tokenizer(
                    text, add_special_tokens=False, truncation=False, padding=False, verbose=False
                )["input_ids"]
            )
        return len(counter.encode(text, add_special_tokens=False).ids)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        with self._lock:
            return self._encode(list(texts))

    def _encode(self, texts: list[str]) -> Vectors:
        out = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(out, dtype=np.float32)
        # bf16 normalises in bf16 (norms off by ~1e-3); renormalise in fp32 so every backend
        # returns unit vectors (a no-op to rounding for fp32).
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: Vectors = vectors / np.maximum(norms, 1e-12)
        return unit

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self.embed_documents([text])[0]
        return vector


def _private_counter(tokenizer: Any) -> Any:
    """A thread-safe copy of a fast tokenizer's Rust backend, for counting; None if slow."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return counting_tokenizer(backend.to_str())


__all__ = ["SentenceTransformerEmbedder"]
