"""``list_sources`` of the filtered-search benchmark: cold (first call after a documents
write) and warm (cached) separately, with every count checked.

The service gets the production cache (:mod:`server.search.source_counts`) following
``kb_documents`` on a LISTEN connection of its own, as a server process does. Each round
writes through an announcing engine: ``TOUCHED`` documents leave and come back in one
transaction (soft-deleted, then live again: every cached answer is stale, the change log
gains two rows per document for every count to read and evaluate under its predicate,
and the counts stay those of the independent evaluation), waits until the listener has
heard it, then calls every caller once (cold: each one's cached count is brought forward
from the change log, :mod:`server.search.source_tally`) and once more (warm), both in a
shuffled order. The round before the measured ones is each caller's first call (a full
count): ``first`` reports it. Every call goes through the use case (policy filter, audit
row). Every count is compared with the independent evaluation.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from bench._kbdata import percentile
from bench._recall_policy import BenchCaller, policy_yaml
from bench._recall_report import ListingRow

HEARD_WITHIN_S = 10.0
TOUCHED = 100  # documents written per round: about what one ingestion batch writes


async def listing(
    dsn: str, callers: Sequence[BenchCaller], expected_docs: Sequence[int], reps: int
) -> list[ListingRow]:
    """``reps`` rounds (plus one unmeasured) of a write, every caller cold, then warm."""
    from sqlalchemy import text

    from core.identity import Caller
    from policies.engine import PolicyEngine
    from policies.rules import parse_policy_yaml
    from server.audit.recorder import AuditRecorder
    from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
    from server.search import SearchService
    from server.search.source_counts import DocumentsGeneration, SourceCounts
    from server.settings import Settings
    from server.usecases import reading

    engine = PolicyEngine.of(parse_policy_yaml(policy_yaml(callers)), version=1)
    settings = Settings(database={"url": dsn}, home="/tmp/kb-bench-home")
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(dsn)), settings)
    generation = DocumentsGeneration(dsn)
    counts = SourceCounts(generation)
    ctx = reading.Readers(
        search=SearchService(db, None, settings, source_counts=counts),  # type: ignore[arg-type]
        policies=engine,
        audit=AuditRecorder(db, settings.audit),
    )
    principals = [Caller.of(*c.principals) for c in callers]
    cold: list[list[float]] = [[] for _ in callers]
    warm: list[list[float]] = [[] for _ in callers]
    first = [float("nan")] * len(callers)
    seen: list[set[int]] = [set() for _ in callers]
    order = random.Random(5)
    idx = list(range(len(callers)))

    async def touch() -> None:
        """One announced documents write; back once this process heard it."""
        before = generation.current()
        async with db.sessions() as session, session.begin():
            picked = {"n": TOUCHED, "skip": order.randrange(1_000)}
            chosen = "SELECT id FROM documents ORDER BY id OFFSET :skip LIMIT :n"
            for state in ("now()", "NULL"):
                await session.execute(
                    text(f"UPDATE documents SET deleted_at = {state} WHERE id IN ({chosen})"),
                    picked,
                )
        deadline = time.monotonic() + HEARD_WITHIN_S
        while generation.current() in (None, before):
            if time.monotonic() > deadline:
                raise RuntimeError("the documents write was not heard: no cold call to time")
            await asyncio.sleep(0.005)

    async def call(ci: int) -> float:
        t0 = time.perf_counter()
        found = await reading.list_sources(ctx, principals[ci])
        took = (time.perf_counter() - t0) * 1000
        seen[ci].add(sum(s.documents for s in found))
        return took

    await generation.start()
    try:
        await asyncio.wait_for(generation.connected.wait(), HEARD_WITHIN_S)
        for rep in range(reps + 1):
            await touch()
            for times in (cold, warm):
                order.shuffle(idx)
                for ci in idx:
                    took = await call(ci)
                    if rep:  # the first round warms connections and caches up
                        times[ci].append(took)
                    elif times is cold:
                        first[ci] = took
    finally:
        await generation.stop()
        await db.dispose()
    return [
        ListingRow(
            shape=c.shape,
            level=c.level,
            # Every answer, cold or warm: more than one value is a wrong count.
            documents=min(seen[ci]) if len(seen[ci]) == 1 else -1,
            expected=expected_docs[ci],
            p50_ms=percentile(cold[ci], 50),
            p95_ms=percentile(cold[ci], 95),
            all_ms=cold[ci],
            warm_p50_ms=percentile(warm[ci], 50),
            warm_p95_ms=percentile(warm[ci], 95),
            warm_ms=warm[ci],
            first_ms=first[ci],
        )
        for ci, c in enumerate(callers)
    ]


__all__ = ["listing"]
