"""Search statements built once per caller predicate and shape, not once per search.

A search sends three statements around the caller's access predicate (BM25 scoring, the
vector query, hydration). Building each as a SQLAlchemy expression and then working out
its cache key cost about 0.3-0.6 ms of the event loop per statement and per search
(``python -m bench search_profile``). What changes from one search to the next (the query
terms and weights, the embedding, the ids, the limit) is passed as parameters, so the
statement itself depends only on the caller's predicate and the shape around it.

The predicate is the anchor: the policy engine builds it once per policy snapshot,
principals and columns (``policies.compiler.compile_predicate``) and returns the same
object each time. An entry is found by the anchor's identity and kept with a strong
reference to it, so its ``id`` cannot be reused by another object while the entry lives,
and the anchor is compared by identity (never by value) on every hit. A predicate built
afresh per call (a wrapper the engine adds) simply never hits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class StatementMemo:
    """A bounded LRU of statements keyed by (anchor identity, shape)."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[int, Hashable], tuple[object, object]] = OrderedDict()

    def get(self, anchor: object, shape: Hashable, build: Callable[[], T]) -> T:
        key = (id(anchor), shape)
        found = self._items.get(key)
        if found is not None and found[0] is anchor:
            self._items.move_to_end(key)
            built: T = found[1]  # type: ignore[assignment]
            return built
        statement = build()
        self._items[key] = (anchor, statement)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
        return statement

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["StatementMemo"]
