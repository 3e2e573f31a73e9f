"""Metrics computed at scrape time from the running server: policy, pool, queue, corpus.

These are state, not events, so they are read when Prometheus asks rather than updated
on every change: the policy snapshot's version and age, the database pool's use, and the
database-held figures of :mod:`server.observability.repository` (queue depth, documents
and chunks per source, ingestion totals and run durations). The database figures are
cached for ``metrics.database_interval_s`` so several scrapers (or a scrape storm) cost
one set of queries; when the database cannot answer, ``kb_metrics_database_up`` is 0 and
the last good figures are not repeated (stale numbers would hide the outage).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from server.observability.repository import RUN_BUCKETS, DatabaseStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyFigures:
    """The policy engine's state at scrape time."""

    version: int
    age_s: float
    max_age_s: float | None
    uncompilable_rules: int
    reloads: int


class PoolView(Protocol):
    """SQLAlchemy's QueuePool as the collector reads it."""

    def size(self) -> int: ...

    def checkedout(self) -> int: ...

    def overflow(self) -> int: ...


class CachedStats:
    """The database figures, refreshed at most every ``interval_s`` seconds."""

    def __init__(self, read: Callable[[], Awaitable[DatabaseStats]], interval_s: float) -> None:
        self._read = read
        self.interval_s = interval_s
        self._lock = asyncio.Lock()
        self.stats: DatabaseStats | None = None
        self.read_seconds = 0.0
        self._read_at = float("-inf")

    async def refresh(self) -> DatabaseStats | None:
        async with self._lock:
            if time.monotonic() - self._read_at < self.interval_s:
                return self.stats
            started = time.monotonic()
            try:
                self.stats = await self._read()
            except Exception as exc:
                # An outage shows as kb_metrics_database_up 0; the reason goes to the log.
                log.warning("metrics: database figures unavailable (%s)", exc.__class__.__name__)
                self.stats = None
            self.read_seconds = time.monotonic() - started
            self._read_at = time.monotonic()
            return self.stats


class ServerCollector:
    """A prometheus-client collector over one server's runtime state."""

    def __init__(
        self,
        *,
        policies: PolicyFigures,
        pool: PoolView | None,
        stats: DatabaseStats | None,
        read_seconds: float,
        version: str,
    ) -> None:
        self.policies = policies
        self.pool = pool
        self.stats = stats
        self.read_seconds = read_seconds
        self.version = version

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("kb_build_info", "kb version of this process.", labels=["version"])
        info.add_metric([self.version], 1)
        yield info
        yield from self._policy()
        yield from self._pool()
        up = GaugeMetricFamily(
            "kb_metrics_database_up",
            "1 when the last read of the database-held figures succeeded.",
            value=1 if self.stats is not None else 0,
        )
        yield up
        yield GaugeMetricFamily(
            "kb_metrics_database_read_seconds",
            "How long the last read of the database-held figures took.",
            value=self.read_seconds,
        )
        if self.stats is not None:
            yield from _queue(self.stats)
            yield from _corpus(self.stats)
            yield from _ingestion(self.stats)

    def _policy(self) -> Iterator[Metric]:
        p = self.policies
        yield GaugeMetricFamily(
            "kb_policy_version", "Version of the active policy snapshot.", value=p.version
        )
        yield GaugeMetricFamily(
            "kb_policy_age_seconds",
            "Seconds since the policy snapshot was last confirmed current (LISTEN or poll).",
            value=p.age_s,
        )
        if p.max_age_s is not None:
            yield GaugeMetricFamily(
                "kb_policy_max_age_seconds",
                "Age past which the snapshot is refused (every call fails closed).",
                value=p.max_age_s,
            )
        yield GaugeMetricFamily(
            "kb_policy_uncompilable_rules",
            "Rules of the active snapshot that could not be compiled as written (narrowed "
            "or dropped, failing closed); see `kb policy lint`.",
            value=p.uncompilable_rules,
        )
        yield CounterMetricFamily(
            "kb_policy_reloads",
            "Policy snapshots installed since this process started.",
            value=p.reloads,
        )

    def _pool(self) -> Iterator[Metric]:
        if self.pool is None:
            return
        yield GaugeMetricFamily(
            "kb_db_pool_size", "Connections the pool keeps open.", value=self.pool.size()
        )
        yield GaugeMetricFamily(
            "kb_db_pool_checked_out",
            "Pool connections in use by requests right now.",
            value=self.pool.checkedout(),
        )
        yield GaugeMetricFamily(
            "kb_db_pool_overflow",
            "Connections open beyond the pool size (negative: pool not yet filled).",
            value=self.pool.overflow(),
        )


def _queue(stats: DatabaseStats) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        "kb_queue_jobs",
        "Jobs waiting (todo) or running (doing) in the job queue.",
        labels=["queue", "task", "status"],
    )
    for (queue, task, status), n in sorted(stats.queue.items()):
        jobs.add_metric([queue, task, status], n)
    yield jobs
    yield GaugeMetricFamily(
        "kb_ingest_oldest_queued_seconds",
        "Age of the oldest sync still queued (0 when none waits).",
        value=stats.oldest_queued_s,
    )


def _corpus(stats: DatabaseStats) -> Iterator[Metric]:
    docs = GaugeMetricFamily(
        "kb_source_documents", "Documents currently stored, by source.", labels=["source"]
    )
    chunks = GaugeMetricFamily(
        "kb_source_chunks", "Chunks currently stored, by source.", labels=["source"]
    )
    enabled = GaugeMetricFamily(
        "kb_source_enabled", "1 for an enabled source, 0 for a disabled one.", labels=["source"]
    )
    last = GaugeMetricFamily(
        "kb_source_last_success_timestamp_seconds",
        "When the source's last successful sync finished (unix time).",
        labels=["source"],
    )
    names = sorted(set(stats.source_enabled) | set(stats.documents) | set(stats.chunks))
    for name in names:
        docs.add_metric([name], stats.documents.get(name, 0))
        chunks.add_metric([name], stats.chunks.get(name, 0))
        if name in stats.source_enabled:
            enabled.add_metric([name], 1 if stats.source_enabled[name] else 0)
        if name in stats.last_success:
            last.add_metric([name], stats.last_success[name])
    yield from (docs, chunks, enabled, last)


def _ingestion(stats: DatabaseStats) -> Iterator[Metric]:
    documents = CounterMetricFamily(
        "kb_ingest_documents",
        "Documents processed by syncs, by source and result (added, updated, unchanged, "
        "deleted, failed); summed over every recorded run.",
        labels=["source", "result"],
    )
    for (source, result), n in sorted(stats.ingested.items()):
        documents.add_metric([source, result], n)
    chunks = CounterMetricFamily(
        "kb_ingest_chunks", "Chunks written by syncs, by source.", labels=["source"]
    )
    for source, n in sorted(stats.chunks_written.items()):
        chunks.add_metric([source], n)
    runs = CounterMetricFamily(
        "kb_ingest_runs",
        "Sync runs by source and status (queued, running, succeeded, failed, cancelled).",
        labels=["source", "status"],
    )
    for (source, status), n in sorted(stats.runs.items()):
        runs.add_metric([source, status], n)
    durations = HistogramMetricFamily(
        "kb_ingest_run_duration_seconds",
        "Duration of finished sync runs (start to finish), by source.",
        labels=["source"],
    )
    for source, d in sorted(stats.durations.items()):
        buckets = [(_le(b), float(n)) for b, n in zip(RUN_BUCKETS, d.buckets, strict=True)]
        buckets.append(("+Inf", float(d.count)))
        durations.add_metric([source], buckets, sum_value=d.total_s)
    yield from (documents, chunks, runs, durations)


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


__all__ = ["CachedStats", "PolicyFigures", "PoolView", "ServerCollector"]
