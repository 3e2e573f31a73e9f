"""The Audit page: rows filtered by principal, method or tool, document, outcome and time;
the same filter exported as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.datastructures import QueryParams

from core.errors import InvalidRequest
from server.audit.query import AuditFilter
from server.http.console.render import page
from server.http.console.session import PREFIX, ConsoleUser
from server.usecases.audit_search import EXPORT_LIMIT, search_audit

router = APIRouter(prefix=PREFIX, include_in_schema=False)

OUTCOMES = ("ok", "denied", "not_found", "invalid", "error")
COLUMNS = (
    "id",
    "at",
    "principals",
    "client_id",
    "transport",
    "method",
    "target",
    "outcome",
    "error",
    "latency_ms",
    "policy_version",
    "document_ids",
    "arguments",
)


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: not a date and time ({value!r})") from None
    # The form's datetime-local fields have no zone: the console speaks UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filter_of(params: QueryParams, *, limit: int) -> AuditFilter:
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
    return AuditFilter(
        principal=(params.get("principal") or "").strip() or None,
        method=(params.get("method") or "").strip() or None,
        document=(params.get("document") or "").strip() or None,
        outcome=outcome,
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
        limit=limit,
    )


@router.get("/audit")
async def audit_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    rows: list[dict[str, Any]] = []
    error = None
    try:
        flt = filter_of(request.query_params, limit=200)
        rows = await search_audit(request.app.state.runtime, console.admin, flt)
    except InvalidRequest as exc:
        error = exc.message
    return page(
        request,
        "audit.html",
        console,
        status_code=400 if error else 200,
        active="audit",
        rows=rows,
        error=error,
        params=request.query_params,
        outcomes=OUTCOMES,
        export_query=str(request.query_params),
    )


def _csv(rows: list[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                json.dumps(row[c], ensure_ascii=False)
                if isinstance(row[c], list | dict)
                else row[c]
                for c in COLUMNS
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@router.get("/audit.csv")
async def audit_csv(request: Request, console: ConsoleUser) -> StreamingResponse:
    flt = filter_of(request.query_params, limit=EXPORT_LIMIT)
    rows = await search_audit(request.app.state.runtime, console.admin, flt, export=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


__all__ = ["filter_of", "router"]
