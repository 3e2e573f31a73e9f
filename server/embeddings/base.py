"""The embedder interface and its event-loop-safe wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors. Implementations are blocking and thread-safe
    for one caller at a time; :class:`AsyncEmbedder` serialises calls on one thread."""

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Word pieces a chunk may hold, excluding the model's special tokens."""
        ...

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` with no truncation and no special tokens."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised row per text, shape (len(texts), dimensions)."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """One L2-normalised vector of shape (dimensions,)."""
        ...


class AsyncEmbedder:
    """Runs a blocking :class:`Embedder` on one dedicated worker thread.

    One thread because torch already parallelises inside a call; more threads would only
    contend for the same cores. Nothing here ever runs model inference on the event loop.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    @property
    def dimensions(self) -> int:
        return self.embedder.dimensions

    async def embed_query(self, text: str) -> Vectors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.embedder.embed_query, text)

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.embedder.embed_documents, list(texts))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["AsyncEmbedder", "Embedder", "Vectors"]
