"""The plan a production vector query actually used, from EXPLAIN of its own statement.

:class:`PlanProbe` listens on the service's engine. While it is on, every statement that
orders by ``<=>`` is first sent as ``EXPLAIN (FORMAT JSON)`` on the same connection, in the
same transaction, with the same parameters, just before it runs: the plan is the planner's
choice for exactly what production runs, with whatever settings production applied (at
session or transaction level). :func:`classify` names it: ``HNSW`` (index order, nothing
filtered), ``iterative HNSW`` (index order with the access predicate as a filter;
iterative scans are on), or ``exact (...)`` (every allowed row found another way, then
sorted by distance). The probe costs time, so probed calls are extra, untimed calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

HNSW_INDEX = "ix_chunks_embedding_hnsw"


class PlanProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._on = False
        self.plans: list[dict[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not self._on or "<=>" not in statement:
            return
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        raw = cursor.fetchone()[0]
        plan = raw if isinstance(raw, list) else json.loads(raw)
        self.plans.append(dict(plan[0]["Plan"]))

    @contextmanager
    def explaining(self) -> Iterator[list[dict[str, Any]]]:
        self.plans = []
        self._on = True
        try:
            yield self.plans
        finally:
            self._on = False

    def close(self) -> None:
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._before)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _short(index: str) -> str:
    return index.removeprefix("ix_chunks_")


def classify_all(plans: list[dict[str, Any]]) -> str:
    """One label for a call: "exact (...)", or "iterative HNSW -> exact (...)" when the
    service redid a short HNSW walk exactly."""
    return " -> ".join(classify(p) for p in plans) if plans else "?"


def classify(plan: dict[str, Any] | None) -> str:
    if plan is None:
        return "?"
    nodes = list(_nodes(plan))
    for n in nodes:
        if n.get("Index Name") == HNSW_INDEX:
            return "iterative HNSW" if n.get("Filter") else "HNSW"
    scans = [
        n for n in nodes if n.get("Relation Name") == "chunks" and "Scan" in n.get("Node Type", "")
    ]
    if not scans:
        return "exact (?)"
    scan = scans[0]
    kind = scan["Node Type"]
    if kind == "Bitmap Heap Scan":
        names = sorted(
            {n["Index Name"] for n in nodes if n.get("Node Type") == "Bitmap Index Scan"}
        )
        return f"exact (bitmap {'+'.join(names)})"
    if "Index" in kind:
        return f"exact (index {_short(str(scan.get('Index Name')))})"
    return "exact (parallel seq scan)" if scan.get("Parallel Aware") else "exact (seq scan)"
