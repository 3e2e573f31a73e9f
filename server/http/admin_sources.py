"""``/admin/sources`` and ``/admin/jobs``: sources, syncs and ingest runs (admin role).

The handlers call the same blocking services as ``kb sources``/``kb sync``/``kb jobs``
(:mod:`server.ingest.catalog`, :mod:`server.jobs.enqueue`) on worker threads, so the event
loop never waits on a connector check or a sync database call. Admin calls are rare; the
sync engine uses no pool (``NullPool``), so nothing outlives a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from core.errors import ConfigError, ConnectorError, InvalidRequest, KBError, NotFound
from core.identity import Caller
from server.http.deps import require_admin
from server.http.params import RowId
from server.ingest import catalog
from server.ingest.service import SyncBusy
from server.jobs.enqueue import SyncAlreadyQueued, enqueue_sync
from server.runtime import Runtime

router = APIRouter(tags=["admin"])

Admin = Annotated[Caller, Depends(require_admin)]
T = TypeVar("T")


class SyncQueued(BaseModel):
    run_id: int = Field(description="Follow it at /admin/jobs/{run_id}.")
    job_id: int
    source: str


def _engine(request: Request) -> Engine:
    engine: Engine | None = getattr(request.app.state, "admin_sync_engine", None)
    if engine is None:
        runtime: Runtime = request.app.state.runtime
        engine = create_engine(runtime.target.url, poolclass=NullPool)
        request.app.state.admin_sync_engine = engine
    return engine


async def _call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service off the loop and map the error tree to HTTP once."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except NotFound as exc:
        raise HTTPException(status_code=404, detail=exc.message) from None
    except (SyncAlreadyQueued, SyncBusy) as exc:
        raise HTTPException(status_code=409, detail=exc.message) from None
    except (InvalidRequest, ConfigError, ConnectorError) as exc:
        raise HTTPException(status_code=400, detail=exc.message) from None
    except KBError as exc:
        raise HTTPException(status_code=503, detail=exc.message) from None
    except DBAPIError:
        raise HTTPException(status_code=503, detail="the database is unavailable") from None


@router.get("/admin/sources", summary="List sources with document counts and last run")
async def list_sources(request: Request, admin: Admin) -> list[dict[str, Any]]:
    return await _call(catalog.list_sources, _engine(request), request.app.state.settings)


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
    return await _call(
        catalog.add_source,
        _engine(request),
        request.app.state.settings,
        definition,
        origin="api",
        replace=replace,
    )


@router.get("/admin/sources/{name}", summary="One source: configuration, cursor, recent runs")
async def get_source(request: Request, admin: Admin, name: str) -> dict[str, Any]:
    return await _call(catalog.get_source, _engine(request), request.app.state.settings, name)


@router.post("/admin/sources/{name}/sync", status_code=202, summary="Queue a sync of the source")
async def sync_source(request: Request, admin: Admin, name: str) -> SyncQueued:
    runtime: Runtime = request.app.state.runtime
    queued = await _call(
        enqueue_sync,
        request.app.state.settings,
        runtime.target,
        _engine(request),
        name,
        trigger="api",
    )
    return SyncQueued(run_id=queued.run_id, job_id=queued.job_id, source=name)


@router.delete(
    "/admin/sources/{name}",
    status_code=204,
    summary="Remove a source with its documents and chunks",
)
async def remove_source(request: Request, admin: Admin, name: str) -> Response:
    await _call(catalog.remove_source, _engine(request), request.app.state.settings, name)
    return Response(status_code=204)


@router.get("/admin/jobs", summary="Ingest runs, newest first")
async def list_jobs(
    request: Request,
    admin: Admin,
    source: str | None = Query(None, description="Only runs of this source."),
    limit: int = Query(50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return await _call(catalog.list_runs, _engine(request), source=source, limit=limit)


@router.get("/admin/jobs/{run_id}", summary="One run: status, counts, failed documents")
async def get_job(request: Request, admin: Admin, run_id: RowId) -> dict[str, Any]:
    return await _call(catalog.get_run, _engine(request), run_id)


__all__ = ["router"]
