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
        if precision == "bf16":
            self._model = self._model.to(torch.bfloat16)
        window = int(self._model.get_max_seq_length() or 256)
        self._model.max_seq_length = window
        # Chunks must fit the window with the two special tokens ([CLS], [SEP]).
        self._max_tokens = min(max_tokens, window - 2)
        self._tokenizer: Any = self._model.tokenizer
        dim = self._model.get_embedding_dimension()
        self._dimensions = int(dim) if dim else int(self.embed_query("probe").shape[0])
        log.info("loaded embedding model %s (%d dimensions, %s)", name, self._dimensions, precision)

    @property
    def name(self) -> str:
        return self._name

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
        # The packaged tokenizer truncates at 128 by default: turn truncation off to count.
        ids = self._tokenizer(
            text, add_special_tokens=False, truncation=False, padding=False, verbose=False
        )["input_ids"]
        return len(ids)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self.embed_documents([text])[0]
        return vector


__all__ = ["SentenceTransformerEmbedder"]
