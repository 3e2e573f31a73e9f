"""The operator's overview and the progress of ingest runs (admin only): the console's
Overview and Jobs pages.

Overview: documents and chunks per source; searches, their latency and the errors and
refusals of every call over the last hour (5-minute buckets) and day (hourly buckets),
from the audit log; documents ingested per hour, from the ingest runs.

Progress: a run records what it has read so far, not how much there is, so the total is
estimated as the larger of the source's live documents and what its last finished run
read; rate and ETA follow from the elapsed time. Unknown stays unknown (None).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from policies.capability import AdminCaller
from server.audit.stats import CallBucket, call_buckets
from server.ingest.stats import IngestBucket, ingest_buckets
from server.observability.repository import read_stats

if TYPE_CHECKING:
    from server.runtime import Runtime

HOUR_BUCKET_S = 300
DAY_BUCKET_S = 3600


@dataclass(frozen=True)
class SourceStat:
    name: str
    documents: int
    chunks: int


@dataclass(frozen=True)
class Overview:
    at: datetime
    sources: list[SourceStat]
    last_hour: list[CallBucket]
    last_day: list[CallBucket]
    ingest_day: list[IngestBucket]

    @property
    def searches_hour(self) -> int:
        return sum(b.searches for b in self.last_hour)

    @property
    def searches_day(self) -> int:
        return sum(b.searches for b in self.last_day)

    @property
    def errors_hour(self) -> int:
        return sum(b.errors for b in self.last_hour)

    @property
    def errors_day(self) -> int:
        return sum(b.errors for b in self.last_day)

    @property
    def denied_day(self) -> int:
        return sum(b.denied for b in self.last_day)

    @property
    def ingest_rate_day(self) -> float | None:
        """Documents per second of run time over the day's finished runs."""
        seconds = sum(b.seconds for b in self.ingest_day)
        return sum(b.documents for b in self.ingest_day) / seconds if seconds > 0 else None


async def overview(rt: Runtime, admin: AdminCaller) -> Overview:
    now = datetime.now(UTC)
    async with (
        rt.audit.call(admin.caller, method="overview.read"),
        rt.db.sessions() as session,
    ):
        # The same per-source counts /metrics exports.
        corpus = await read_stats(session)
        hour = await call_buckets(session, now - timedelta(hours=1), HOUR_BUCKET_S)
        day = await call_buckets(session, now - timedelta(days=1), DAY_BUCKET_S)
        ingest = await ingest_buckets(session, now - timedelta(days=1), DAY_BUCKET_S)
    names = sorted({*corpus.documents, *corpus.chunks})
    sources = [SourceStat(n, corpus.documents.get(n, 0), corpus.chunks.get(n, 0)) for n in names]
    return Overview(now, sources, hour, day, ingest)


@dataclass(frozen=True)
class RunProgress:
    run: dict[str, Any]
    done: int
    total: int | None
    rate: float | None  # documents per second
    eta_s: float | None

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, round(100 * self.done / self.total))


def _progress(run: dict[str, Any], documents: int, previous: int) -> RunProgress:
    done = int(run.get("docs_seen") or 0)
    elapsed = run.get("duration_s")
    rate = done / elapsed if elapsed and done else None
    if run["status"] == "succeeded":
        return RunProgress(run, done, done, rate, 0.0)
    total = max(documents, previous, done) or None
    eta = (total - done) / rate if run["status"] == "running" and total and rate else None
    return RunProgress(run, done, total, rate, eta)


async def run_progress(
    rt: Runtime, admin: AdminCaller, *, limit: int = 30, source: str | None = None
) -> list[RunProgress]:
    """Recent runs, newest first, with done / estimated total, rate and ETA."""
    from server.db.engine import make_sync_engine
    from server.ingest import catalog, repository

    def load() -> tuple[list[dict[str, Any]], dict[str, int]]:
        engine = make_sync_engine(rt.target, rt.settings)
        try:
            runs = catalog.list_runs(engine, source=source, limit=limit)
            with engine.connect() as conn:
                return runs, repository.live_document_counts(conn)
        finally:
            engine.dispose()

    async with rt.audit.call(
        admin.caller, method="jobs.list", arguments={"source": source, "limit": limit}
    ):
        runs, documents = await asyncio.to_thread(load)
    # What the last finished run of each source read (runs are newest first).
    previous: dict[int, int] = {}
    last_read: dict[str, int] = {}
    for run in reversed(runs):
        previous[run["id"]] = last_read.get(run["source"], 0)
        if run["status"] == "succeeded":
            last_read[run["source"]] = int(run.get("docs_seen") or 0)
    return [_progress(r, documents.get(r["source"], 0), previous[r["id"]]) for r in runs]


__all__ = ["Overview", "RunProgress", "SourceStat", "overview", "run_progress"]
