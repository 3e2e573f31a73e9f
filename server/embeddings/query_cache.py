"""A bounded LRU of query vectors, so a repeated search skips the model."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


def cache_key(model_id: str, text: str) -> tuple[str, str]:
    """Whitespace runs collapsed and ends trimmed: the tokenizer splits on whitespace, so
    these texts become the same word pieces and the same vector. Case is kept: a cased
    model would embed "Apple" and "apple" differently."""
    return model_id, " ".join(text.split())


class QueryCache:
    """Thread-safe LRU from (model/backend id, normalised text) to a read-only vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[str, str], Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Vectors | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: tuple[str, str], vector: Vectors) -> Vectors:
        """Store a read-only copy and return it: no caller can alter what others get."""
        frozen = vector.copy()
        frozen.setflags(write=False)
        with self._lock:
            self._items[key] = frozen
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return frozen

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["QueryCache", "cache_key"]
