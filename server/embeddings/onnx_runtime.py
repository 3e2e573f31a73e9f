"""Embedding with ONNX Runtime on the exported graph (fp32 or int8), no torch at run time."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from server.embeddings.base import Vectors
from server.embeddings.model_layout import ModelLayout
from server.embeddings.onnx_export import INPUT_NAMES, OUTPUT_NAME, OnnxModel
from server.embeddings.tokenization import counting_tokenizer, encoding_tokenizer

log = logging.getLogger(__name__)

# Word pieces (special tokens included) from which embed_query_wide uses every core.
WIDE_FROM_TOKENS = 24


class OnnxEmbedder:
    """Tokenises with the model's own fast tokenizer and runs the exported graph.

    Two sessions, because the best thread set-up differs: a query is a tiny graph where one
    intra-op thread per call and several calls at once give the most queries per second
    (``session.run`` is thread-safe), while a batch of chunks wants every core. The batch
    session is created on first use, so a process that only answers queries pays for it
    (a second copy of the weights, about 90 MB for MiniLM in fp32) only once it embeds a
    long query on every core (:meth:`embed_query_wide`).
    """

    def __init__(
        self,
        exported: OnnxModel,
        layout: ModelLayout,
        *,
        name: str,
        batch_size: int = 16,
        max_tokens: int = 254,
        threads: int | None = None,
    ) -> None:
        self._exported = exported
        self._name = name
        self._backend = f"onnx-{exported.variant}"
        self._batch_size = batch_size
        self._threads = threads or os.cpu_count() or 1
        self._tokenizer = encoding_tokenizer(layout.tokenizer_file, layout.max_seq_length)
        self._counter = counting_tokenizer(self._tokenizer.to_str())
        # Chunks must fit the window with the two special tokens ([CLS], [SEP]).
        self._max_tokens = min(max_tokens, layout.max_seq_length - 2)
        self._query_session = self._session(intra_threads=1)
        self._batch_session: Any = None
        self._batch_lock = threading.Lock()
        self._inputs = {i.name for i in self._query_session.get_inputs()}
        self._dimensions = int(self.embed_query("probe").shape[0])
        log.info("loaded %s for %s from %s", self._backend, name, exported.path)

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

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        session = self._batch()
        # Batch texts of similar length together (as sentence-transformers does) so little
        # compute goes to padding; results go back in the callers' order.
        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out = np.empty((len(texts), self._dimensions), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = self._run(session, [texts[i] for i in rows])
        return out

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._run(self._query_session, [text])[0]
        return vector

    def embed_query_wide(self, text: str) -> Vectors:
        """:meth:`embed_query` on every core when the query is long enough to gain from it.

        For a caller that knows the cores are otherwise idle (a search alone in its
        process). A query of at least ``WIDE_FROM_TOKENS`` word pieces runs on the batch
        session's threads (a 65-word CISI query: the search's embedding p50 19.9 -> 14.8
        ms); a shorter one stays on the one-thread session, where a second thread only
        adds hand-offs (5-10 word queries: 5.8 against 6.0 ms). Same weights, same graph.
        """
        encoded = self._tokenizer.encode_batch([text])
        long = len(encoded[0].ids) >= WIDE_FROM_TOKENS
        session = self._batch() if long else self._query_session
        vector: Vectors = self._infer(session, encoded)[0]
        return vector

    def _run(self, session: Any, texts: list[str]) -> Vectors:
        return self._infer(session, self._tokenizer.encode_batch(texts))

    def _infer(self, session: Any, encoded: list[Any]) -> Vectors:
        ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.zeros_like(ids),
        }
        result = session.run([OUTPUT_NAME], {k: v for k, v in feed.items() if k in self._inputs})
        return np.asarray(result[0], dtype=np.float32)

    def _batch(self) -> Any:
        with self._batch_lock:
            if self._batch_session is None:
                self._batch_session = self._session(intra_threads=self._threads)
            return self._batch_session

    def _session(self, *, intra_threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle workers must not spin: the same two cores serve Postgres and the web server.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(
            str(self._exported.path), options, providers=["CPUExecutionProvider"]
        )


__all__ = ["INPUT_NAMES", "WIDE_FROM_TOKENS", "OnnxEmbedder"]
