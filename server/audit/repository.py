"""Reads of the audit log: the newest rows, rows after an id, rows since a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.engine import Database
from server.db.models import AuditEntry

EXPORT_BATCH = 1000


async def tail(
    session: AsyncSession,
    *,
    limit: int,
    principal: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
) -> list[AuditEntry]:
    """The newest ``limit`` rows matching the filters, oldest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if principal is not None:
        stmt = stmt.where(AuditEntry.principals.contains([principal]))
    if outcome is not None:
        stmt = stmt.where(AuditEntry.outcome == outcome)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    rows = list((await session.execute(stmt)).scalars().all())
    rows.reverse()
    return rows


async def after(
    session: AsyncSession, last_id: int, *, limit: int = EXPORT_BATCH
) -> Sequence[AuditEntry]:
    """Rows with an id above ``last_id``, in order (for --follow)."""
    stmt = select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def export_since(db: Database, since: datetime) -> AsyncIterator[AuditEntry]:
    """Every row at or after ``since``, in id order, fetched in batches (keyset paging)."""
    last_id = 0
    while True:
        async with db.sessions() as session:
            stmt = (
                select(AuditEntry)
                .where(AuditEntry.at >= since, AuditEntry.id > last_id)
                .order_by(AuditEntry.id)
                .limit(EXPORT_BATCH)
            )
            batch = (await session.execute(stmt)).scalars().all()
        for row in batch:
            yield row
        if len(batch) < EXPORT_BATCH:
            return
        last_id = batch[-1].id


def as_dict(row: AuditEntry) -> dict[str, object]:
    """A JSON-ready view of one row."""
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "principals": list(row.principals),
        "client_id": row.client_id,
        "transport": row.transport,
        "method": row.method,
        "target": row.target,
        "arguments": row.arguments,
        "document_ids": list(row.document_ids),
        "chunk_ids": list(row.chunk_ids),
        "policy_version": row.policy_version,
        "outcome": row.outcome,
        "error": row.error,
        "latency_ms": row.latency_ms,
        "request_id": row.request_id,
    }


__all__ = ["EXPORT_BATCH", "after", "as_dict", "export_since", "tail"]
