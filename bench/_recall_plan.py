"""The plan a production vector query actually used, from EXPLAIN of its own statement.

:class:`StatementLog` listens on the service's engine and keeps the statements one call
sent, with their parameters. :func:`explain_last_call` replays that transaction on the same
engine (the same ``set_config`` calls, the same capped count if there is one) and prefixes
the statement that orders by ``<=>`` with ``EXPLAIN (FORMAT JSON)``, so the plan is the
planner's choice for exactly what production ran, with the same settings and parameters.
:func:`classify` names it: ``HNSW`` (index order, nothing filtered), ``iterative HNSW``
(index order with the access predicate as a filter; iterative scans are on), or
``exact (...)`` (every allowed row found another way, then sorted by distance).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

HNSW_INDEX = "ix_chunks_embedding_hnsw"


class StatementLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self._on:
            self.statements.append((statement, parameters))

    @contextmanager
    def recording(self) -> Iterator[None]:
        self.statements = []
        self._on = True
        try:
            yield
        finally:
            self._on = False

    def close(self) -> None:
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._seen)


async def explain_last_call(engine: AsyncEngine, log: StatementLog) -> dict[str, Any] | None:
    """EXPLAIN of the vector statement of the recorded call, replayed in one transaction."""
    recorded = list(log.statements)
    vector = [i for i, (s, _) in enumerate(recorded) if "<=>" in s]
    if not vector:
        return None
    last = vector[-1]
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            for i, (statement, params) in enumerate(recorded[: last + 1]):
                if statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                    continue
                if i == last:
                    statement = "EXPLAIN (FORMAT JSON) " + statement
                result = await conn.exec_driver_sql(statement, params)
                if i == last:
                    raw = result.scalar_one()
                    plan = raw if isinstance(raw, list) else json.loads(raw)
                    return dict(plan[0]["Plan"])
        finally:
            await trans.rollback()
    return None


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _short(index: str) -> str:
    return index.removeprefix("ix_chunks_")


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
