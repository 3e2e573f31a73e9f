"""The Jobs page: running and recent ingest runs with live progress, one run's failures
with their reasons, and retry (a new sync of the run's source, which also retries the
documents still failing). The table refreshes itself by polling its fragment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from core.errors import KBError
from server.http.console.render import page, redirect
from server.http.console.session import PREFIX, ConsoleUser, checked_form
from server.http.params import RowId
from server.usecases import sources as source_usecases
from server.usecases.overview import run_progress

router = APIRouter(prefix=PREFIX, include_in_schema=False)

LIVE = ("queued", "running")


def _rt(request: Request) -> Any:
    return request.app.state.runtime


async def _runs(request: Request, console: ConsoleUser) -> dict[str, Any]:
    source = request.query_params.get("source") or None
    runs = await run_progress(_rt(request), console.admin, source=source)
    return {"runs": runs, "live": any(r.run["status"] in LIVE for r in runs), "source": source}


@router.get("/jobs")
async def jobs_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    return page(request, "jobs.html", console, active="jobs", **await _runs(request, console))


@router.get("/jobs/table")
async def jobs_table(request: Request, console: ConsoleUser) -> HTMLResponse:
    """The runs table alone: what the page's script swaps in while runs are live."""
    return page(request, "jobs_table.html", console, **await _runs(request, console))


@router.get("/jobs/{run_id}")
async def job_page(request: Request, console: ConsoleUser, run_id: RowId) -> HTMLResponse:
    run = await source_usecases.get_job(_rt(request), console.admin, run_id)
    return page(request, "job.html", console, active="jobs", run=run, live=run["status"] in LIVE)


@router.post("/jobs/{run_id}/retry", response_model=None)
async def retry(request: Request, console: ConsoleUser, run_id: RowId) -> Response:
    await checked_form(request, console)
    run = await source_usecases.get_job(_rt(request), console.admin, run_id)
    try:
        new_id, _ = await source_usecases.sync_source(_rt(request), console.admin, run["source"])
    except KBError as exc:
        return redirect(f"/jobs/{run_id}", problem=exc.message)
    return redirect(f"/jobs/{new_id}", notice=f"run {run_id} retried as run {new_id}")


__all__ = ["router"]
