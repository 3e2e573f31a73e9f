"""Ingestion per time bucket for the operator's overview (reads only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import IngestRun


@dataclass(frozen=True)
class IngestBucket:
    start: datetime
    documents: int  # read by runs that finished in the bucket
    chunks: int
    failed: int
    seconds: float  # the runs' summed durations


async def ingest_buckets(
    session: AsyncSession, since: datetime, width_s: int
) -> list[IngestBucket]:
    """Per bucket of ``width_s`` seconds: what the runs that finished in it read and wrote."""
    epoch = func.extract("epoch", IngestRun.finished_at)
    bucket = (func.floor(epoch / width_s) * width_s).label("bucket")
    duration = func.extract("epoch", IngestRun.finished_at - IngestRun.started_at)
    stmt = (
        select(
            bucket,
            func.coalesce(func.sum(IngestRun.docs_seen), 0),
            func.coalesce(func.sum(IngestRun.chunks_written), 0),
            func.coalesce(func.sum(IngestRun.docs_failed), 0),
            func.coalesce(func.sum(duration), 0),
        )
        .where(IngestRun.finished_at >= since, IngestRun.started_at.is_not(None))
        .group_by(bucket)
        .order_by(bucket)
    )
    return [
        IngestBucket(datetime.fromtimestamp(float(b), UTC), int(d), int(c), int(f), float(s))
        for b, d, c, f, s in (await session.execute(stmt)).all()
    ]


__all__ = ["IngestBucket", "ingest_buckets"]
