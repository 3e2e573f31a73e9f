"""Searching the audit log by principal, method or tool, document, outcome and time
(admin only): the console's Audit page and its CSV export. The read is itself recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.capability import AdminCaller
from server.audit import repository
from server.audit.query import AuditFilter, newest

if TYPE_CHECKING:
    from server.runtime import Runtime

EXPORT_LIMIT = 100_000


async def search_audit(
    rt: Runtime, admin: AdminCaller, flt: AuditFilter, *, export: bool = False
) -> list[dict[str, object]]:
    """Matching rows, newest first; ``export`` records the read as an export."""
    method = "audit.export" if export else "audit.read"
    async with (
        rt.audit.call(admin.caller, method=method, arguments=flt.as_arguments()),
        rt.db.sessions() as session,
    ):
        rows = await newest(session, flt)
    return [repository.as_dict(r) for r in rows]


__all__ = ["EXPORT_LIMIT", "AuditFilter", "search_audit"]
