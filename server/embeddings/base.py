"""The embedder interface and its event-loop-safe wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from server.embeddings.query_cache import QueryCache, cache_key
from server.observability.metrics import timed_query

if TYPE_CHECKING:
    from server.settings import EmbeddingSettings

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors. Implementations are blocking and thread-safe
    (the torch ones by serialising calls; ONNX sessions run calls concurrently)."""

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


def query_embedding(embedder: Embedder, *, wide: bool) -> Callable[[str], Vectors]:
    """``embedder.embed_query``, or with ``wide`` its ``embed_query_wide`` where it has one:
    the same vector, computed on every core when the query is long enough to gain from it
    (for callers that know the cores are otherwise idle). Optional, so embedders without
    a multi-threaded query path (torch, test doubles) need nothing more."""
    if wide:
        method = getattr(embedder, "embed_query_wide", None)
        if callable(method):
            return cast(Callable[[str], Vectors], method)
    return embedder.embed_query


def backend_of(embedder: Embedder) -> str:
    """The backend id an embedder reports (``torch-fp32``, ``onnx-fp32``...) or ``unknown``."""
    return str(getattr(embedder, "backend", "unknown"))


def query_backend_of(embedder: Embedder) -> str:
    """The backend that embeds this embedder's queries."""
    return str(getattr(embedder, "query_backend", None) or backend_of(embedder))


class AsyncEmbedder:
    """Runs a blocking :class:`Embedder` on worker threads, never on the event loop.

    Documents go to one thread: a batch already uses every core inside the call.
    Queries go to ``query_threads`` threads (the same single thread when 1): a query is
    small, and ONNX sessions run several at once for more queries per second. With
    ``cache_size`` > 0, query vectors are kept in an LRU keyed by model, backend and
    whitespace-normalised text, so a repeated search skips the model and the thread hop.
    """

    def __init__(self, embedder: Embedder, *, query_threads: int = 1, cache_size: int = 0) -> None:
        self.embedder = embedder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._query_pool = (
            ThreadPoolExecutor(max_workers=query_threads, thread_name_prefix="embedder-query")
            if query_threads > 1
            else self._pool
        )
        self.cache = QueryCache(cache_size) if cache_size > 0 else None
        self._pending: dict[tuple[str, str], asyncio.Future[Vectors]] = {}
        self._model_id = f"{embedder.name}|{query_backend_of(embedder)}"

    @classmethod
    def configured(cls, embedder: Embedder, settings: EmbeddingSettings) -> AsyncEmbedder:
        """Threads and cache size from the ``embedding`` settings."""
        return cls(
            embedder, query_threads=settings.query_threads, cache_size=settings.query_cache_size
        )

    @property
    def dimensions(self) -> int:
        return self.embedder.dimensions

    @timed_query  # kb_embedder_* and the search's embed stage (/metrics)
    async def embed_query(self, text: str, *, wide: bool = False) -> Vectors:
        """``wide``: the caller knows the cores are otherwise idle, so a long query may be
        embedded on all of them (:func:`query_embedding`)."""
        loop = asyncio.get_running_loop()
        embed = query_embedding(self.embedder, wide=wide)
        if self.cache is None:
            return await loop.run_in_executor(self._query_pool, embed, text)
        key = cache_key(self._model_id, text)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        # The same query arriving again while it is being embedded waits for that one
        # computation instead of starting another (a burst of identical searches).
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # The caller that was computing it was cancelled: compute it here.
        return await self._embed_once(loop, key, text, embed)

    async def _embed_once(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, str],
        text: str,
        embed: Callable[[str], Vectors],
    ) -> Vectors:
        cache = self.cache
        assert cache is not None
        future: asyncio.Future[Vectors] = loop.create_future()
        self._pending[key] = future
        try:
            vector = await loop.run_in_executor(self._query_pool, embed, text)
            frozen = cache.put(key, vector)
            future.set_result(frozen)
            return frozen
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.embedder.embed_documents, list(texts))

    def close(self) -> None:
        if self._query_pool is not self._pool:
            self._query_pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = [
    "AsyncEmbedder",
    "Embedder",
    "Vectors",
    "backend_of",
    "query_backend_of",
    "query_embedding",
]
