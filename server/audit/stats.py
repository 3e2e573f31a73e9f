"""Aggregates over the audit log for the operator's overview: calls, latency and errors
per time bucket. Reads only; the console's overview use case calls them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Float, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEntry

# A search is the MCP search tool, `kb search`, or an administrator's "search as".
_IS_SEARCH = or_(
    and_(AuditEntry.method == "tools/call", AuditEntry.target == "search"),
    AuditEntry.method.in_(("search", "admin.search_as")),
)


@dataclass(frozen=True)
class CallBucket:
    """Calls that started in ``[start, start + width)``."""

    start: datetime
    searches: int
    search_p50_ms: float | None
    search_p95_ms: float | None
    errors: int
    denied: int


async def call_buckets(session: AsyncSession, since: datetime, width_s: int) -> list[CallBucket]:
    """Per bucket of ``width_s`` seconds since ``since``: searches with their latency
    percentiles, and errors and refusals over every call. Empty buckets are left out."""
    epoch = func.extract("epoch", AuditEntry.at)
    bucket = (func.floor(epoch / width_s) * width_s).label("bucket")
    search_latency = case((_IS_SEARCH, AuditEntry.latency_ms))
    stmt = (
        select(
            bucket,
            func.count().filter(_IS_SEARCH),
            func.percentile_cont(0.5).within_group(search_latency.cast(Float)),
            func.percentile_cont(0.95).within_group(search_latency.cast(Float)),
            func.count().filter(AuditEntry.outcome == "error"),
            func.count().filter(AuditEntry.outcome == "denied"),
        )
        .where(AuditEntry.at >= since)
        .group_by(bucket)
        .order_by(bucket)
    )
    rows = (await session.execute(stmt)).all()
    return [
        CallBucket(
            start=datetime.fromtimestamp(float(b), UTC),
            searches=int(n),
            search_p50_ms=float(p50) if p50 is not None else None,
            search_p95_ms=float(p95) if p95 is not None else None,
            errors=int(err),
            denied=int(den),
        )
        for b, n, p50, p95, err, den in rows
    ]


__all__ = ["CallBucket", "call_buckets"]
