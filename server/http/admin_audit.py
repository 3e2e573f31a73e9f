"""``GET /admin/audit``: read the audit log (admin role required)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from policies.capability import AdminCaller
from server.http.deps import admin_caller
from server.usecases.audit_log import AuditQuery, read_audit

if TYPE_CHECKING:
    from server.runtime import Runtime

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_caller)])


@router.get("/audit", summary="The newest audit rows, oldest first")
async def get_audit(
    request: Request,
    admin: Annotated[AdminCaller, Depends(admin_caller)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: datetime | None = None,
    principal: str | None = None,
    outcome: Literal["ok", "denied", "not_found", "invalid", "error"] | None = None,
) -> list[dict[str, object]]:
    runtime: Runtime = request.app.state.runtime
    query = AuditQuery(limit=limit, principal=principal, outcome=outcome, since=since)
    return await read_audit(runtime, admin, query)
