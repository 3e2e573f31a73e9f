"""Filtered reads of the audit log for the console and its CSV export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    """Every field narrows the rows; None leaves it open. ``method`` matches the method
    (``tools/call``, ``policy.add``) or the target (a tool name such as ``search``)."""

    principal: str | None = None
    method: str | None = None
    document: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200

    def as_arguments(self) -> dict[str, object]:
        """The filter as its audit row records it."""
        return {
            "principal": self.principal,
            "method": self.method,
            "document": self.document,
            "outcome": self.outcome,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "limit": self.limit,
        }


async def newest(session: AsyncSession, flt: AuditFilter) -> list[AuditEntry]:
    """The newest ``flt.limit`` rows matching, newest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(flt.limit)
    if flt.principal:
        stmt = stmt.where(AuditEntry.principals.contains([flt.principal]))
    if flt.method:
        stmt = stmt.where(or_(AuditEntry.method == flt.method, AuditEntry.target == flt.method))
    if flt.document:
        stmt = stmt.where(AuditEntry.document_ids.contains([flt.document]))
    if flt.outcome:
        stmt = stmt.where(AuditEntry.outcome == flt.outcome)
    if flt.since is not None:
        stmt = stmt.where(AuditEntry.at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(AuditEntry.at < flt.until)
    return list((await session.execute(stmt)).scalars().all())


__all__ = ["AuditFilter", "newest"]
