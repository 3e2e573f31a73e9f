"""Reading the audit log (admin only): ``/admin/audit``, ``kb audit tail/export``.

Reading the log is itself recorded: the row names who read, with which filters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from policies.capability import AdminCaller
from server.audit import repository

if TYPE_CHECKING:
    from server.runtime import Runtime


@dataclass(frozen=True)
class AuditQuery:
    limit: int = 100
    principal: str | None = None
    outcome: str | None = None
    since: datetime | None = None


async def read_audit(rt: Runtime, admin: AdminCaller, query: AuditQuery) -> list[dict[str, object]]:
    """The newest rows matching the query, oldest first."""
    arguments = {
        "limit": query.limit,
        "principal": query.principal,
        "outcome": query.outcome,
        "since": query.since.isoformat() if query.since else None,
    }
    async with (
        rt.audit.call(admin.caller, method="audit.read", arguments=arguments),
        rt.db.sessions() as session,
    ):
        rows = await repository.tail(
            session,
            limit=query.limit,
            principal=query.principal,
            outcome=query.outcome,
            since=query.since,
        )
    return [repository.as_dict(r) for r in rows]


async def rows_after(rt: Runtime, admin: AdminCaller, last_id: int) -> list[dict[str, object]]:
    """Rows above ``last_id`` (``--follow``): part of the tail already recorded."""
    async with rt.db.sessions() as session:
        return [repository.as_dict(r) for r in await repository.after(session, last_id)]


async def export_audit(
    rt: Runtime, admin: AdminCaller, since: datetime, *, fmt: str
) -> AsyncIterator[dict[str, object]]:
    """Every row since ``since``, in id order; the export is recorded before it starts."""
    await rt.audit.record(
        principals=admin.caller.principals,
        client_id=admin.caller.client_id,
        transport=admin.caller.transport,
        method="audit.export",
        arguments={"since": since.isoformat(), "format": fmt},
        outcome="ok",
    )
    async for row in repository.export_since(rt.db, since):
        yield repository.as_dict(row)


__all__ = ["AuditQuery", "export_audit", "read_audit", "rows_after"]
