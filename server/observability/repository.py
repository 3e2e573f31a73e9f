"""The SQL behind the scrape-time metrics: queue depth, corpus size and ingestion totals.

These figures live in the database, not in one process: a sync runs in whichever
``kb worker`` took the job, on any machine, and its counts are committed to
``ingest_runs`` with the documents. Reading them at scrape time gives every replica the
same truthful totals, across restarts (dashboards take ``max by (source)`` over replicas).

One short read-only transaction with a statement timeout, so a slow or locked database
delays a scrape by at most a few seconds and never blocks a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Float, extract, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Chunk, Document, IngestRun, Source

#: Upper bounds (seconds) of the ingest-run duration histogram.
RUN_BUCKETS: Final = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
DOCUMENT_RESULTS: Final = ("added", "updated", "unchanged", "deleted", "failed")
STATEMENT_TIMEOUT_MS: Final = 5000


@dataclass(frozen=True)
class RunDurations:
    """One source's finished runs: cumulative bucket counts (as RUN_BUCKETS), sum, count."""

    buckets: tuple[int, ...]
    total_s: float
    count: int


@dataclass
class DatabaseStats:
    """Everything the scrape-time collector reads from the database, in one snapshot."""

    queue: dict[tuple[str, str, str], int] = field(default_factory=dict)  # queue, task, status
    source_enabled: dict[str, bool] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)  # unix seconds
    documents: dict[str, int] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)
    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # source, status
    ingested: dict[tuple[str, str], int] = field(default_factory=dict)  # source, result
    chunks_written: dict[str, int] = field(default_factory=dict)
    durations: dict[str, RunDurations] = field(default_factory=dict)
    oldest_queued_s: float = 0.0


async def read_stats(session: AsyncSession) -> DatabaseStats:
    """Read every figure inside the caller's (read-only) transaction."""
    await session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
    stats = DatabaseStats()
    queue = await session.execute(
        text(
            "SELECT queue_name, task_name, status::text AS status, count(*) AS n "
            "FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
            "GROUP BY queue_name, task_name, status"
        )
    )
    for row in queue:
        stats.queue[(row.queue_name, row.task_name, row.status)] = int(row.n)

    for name, enabled, last in await session.execute(
        select(Source.name, Source.enabled, extract("epoch", Source.last_success_at))
    ):
        stats.source_enabled[name] = bool(enabled)
        if last is not None:
            stats.last_success[name] = float(last)

    live = Document.deleted_at.is_(None)
    for source, n in await session.execute(
        select(Document.source, func.count()).where(live).group_by(Document.source)
    ):
        stats.documents[source] = int(n)
    for source, n in await session.execute(
        select(Chunk.source, func.count()).group_by(Chunk.source)
    ):
        stats.chunks[source] = int(n)

    await _read_runs(session, stats)
    return stats


async def _read_runs(session: AsyncSession, stats: DatabaseStats) -> None:
    r = IngestRun
    totals = await session.execute(
        select(
            r.source,
            r.status,
            func.count().label("runs"),
            func.coalesce(func.sum(r.docs_added), 0).label("added"),
            func.coalesce(func.sum(r.docs_updated), 0).label("updated"),
            func.coalesce(func.sum(r.docs_unchanged), 0).label("unchanged"),
            func.coalesce(func.sum(r.docs_deleted), 0).label("deleted"),
            func.coalesce(func.sum(r.docs_failed), 0).label("failed"),
            func.coalesce(func.sum(r.chunks_written), 0).label("chunks"),
        ).group_by(r.source, r.status)
    )
    for row in totals:
        stats.runs[(row.source, row.status)] = int(row.runs)
        for result in DOCUMENT_RESULTS:
            key = (row.source, result)
            stats.ingested[key] = stats.ingested.get(key, 0) + int(getattr(row, result))
        stats.chunks_written[row.source] = stats.chunks_written.get(row.source, 0) + int(row.chunks)

    # Each run's duration computed once (OFFSET 0 keeps the subquery from being inlined into
    # every bucket's FILTER); date_part is double precision, EXTRACT a slower numeric.
    durations = (
        select(
            r.source.label("source"),
            func.date_part("epoch", r.finished_at - r.started_at, type_=Float).label("d"),
        )
        .where(r.finished_at.is_not(None), r.started_at.is_not(None))
        .offset(0)
        .subquery()
    )
    bucket_columns = [
        func.count().filter(durations.c.d <= bound).label(f"le_{i}")
        for i, bound in enumerate(RUN_BUCKETS)
    ]
    finished = await session.execute(
        select(
            durations.c.source,
            func.count().label("n"),
            func.coalesce(func.sum(durations.c.d), 0.0).label("total"),
            *bucket_columns,
        ).group_by(durations.c.source)
    )
    for row in finished:
        stats.durations[row.source] = RunDurations(
            buckets=tuple(int(getattr(row, f"le_{i}")) for i in range(len(RUN_BUCKETS))),
            total_s=float(row.total),
            count=int(row.n),
        )

    oldest = await session.execute(
        select(
            func.coalesce(extract("epoch", func.now() - func.min(r.queued_at)), literal_column("0"))
        ).where(r.status == "queued")
    )
    stats.oldest_queued_s = float(oldest.scalar_one() or 0.0)


__all__ = ["DOCUMENT_RESULTS", "RUN_BUCKETS", "DatabaseStats", "RunDurations", "read_stats"]
