"""``/admin/sources`` and ``/admin/jobs``: sources, syncs and ingest runs (admin role).

The routes parse and render; :mod:`server.usecases.sources` runs the blocking catalog
services on worker threads and writes the audit rows. Errors map once, in
:mod:`server.http.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from policies.capability import AdminCaller
from server.http.deps import admin_caller
from server.http.params import RowId
from server.usecases import sources as usecases

if TYPE_CHECKING:
    from server.runtime import Runtime

# One dependency for the whole router: no route here runs without the admin capability.
router = APIRouter(tags=["admin"], dependencies=[Depends(admin_caller)])

Admin = Annotated[AdminCaller, Depends(admin_caller)]


class SyncQueued(BaseModel):
    run_id: int = Field(description="Follow it at /admin/jobs/{run_id}.")
    job_id: int
    source: str


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/admin/sources", summary="List sources with document counts and last run")
async def list_sources(request: Request, admin: Admin) -> list[dict[str, Any]]:
    return await usecases.list_sources(_runtime(request), admin)


@router.post(
    "/admin/sources",
    status_code=201,
    summary="Add a source, after checking it against the real source",
)
async def add_source(
    request: Request,
    admin: Admin,
    definition: dict[str, Any],
    replace: bool = Query(False, description="Replace a source of the same name."),
) -> dict[str, Any]:
    """The body is one source definition as in the configuration file (``name``, ``kind``,
    then the kind's options). Refused with the reason: a missing directory, table or column,
    a query that is not a SELECT, a literal credential instead of a ``${VAR}`` reference."""
    return await usecases.add_source(_runtime(request), admin, definition, replace=replace)


@router.get("/admin/sources/{name}", summary="One source: configuration, cursor, recent runs")
async def get_source(request: Request, admin: Admin, name: str) -> dict[str, Any]:
    return await usecases.get_source(_runtime(request), admin, name)


@router.post("/admin/sources/{name}/sync", status_code=202, summary="Queue a sync of the source")
async def sync_source(request: Request, admin: Admin, name: str) -> SyncQueued:
    run_id, job_id = await usecases.sync_source(_runtime(request), admin, name)
    return SyncQueued(run_id=run_id, job_id=job_id, source=name)


@router.delete(
    "/admin/sources/{name}",
    status_code=204,
    summary="Remove a source with its documents and chunks",
)
async def remove_source(request: Request, admin: Admin, name: str) -> Response:
    await usecases.remove_source(_runtime(request), admin, name)
    return Response(status_code=204)


@router.get("/admin/jobs", summary="Ingest runs, newest first")
async def list_jobs(
    request: Request,
    admin: Admin,
    source: str | None = Query(None, description="Only runs of this source."),
    limit: int = Query(50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return await usecases.list_jobs(_runtime(request), admin, source=source, limit=limit)


@router.get("/admin/jobs/{run_id}", summary="One run: status, counts, failed documents")
async def get_job(request: Request, admin: Admin, run_id: RowId) -> dict[str, Any]:
    return await usecases.get_job(_runtime(request), admin, run_id)


__all__ = ["router"]
