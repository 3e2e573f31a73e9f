"""``GET /admin/audit``: read the audit log (admin role required)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from core.identity import Caller
from server.audit import repository
from server.http.deps import require_admin
from server.runtime import Runtime

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/audit", summary="The newest audit rows, oldest first")
async def read_audit(
    request: Request,
    admin: Annotated[Caller, Depends(require_admin)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: datetime | None = None,
    principal: str | None = None,
    outcome: Literal["ok", "denied", "not_found", "invalid", "error"] | None = None,
) -> list[dict[str, object]]:
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.sessions() as session:
        rows = await repository.tail(
            session, limit=limit, principal=principal, outcome=outcome, since=since
        )
    return [repository.as_dict(r) for r in rows]
