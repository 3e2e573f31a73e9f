"""The bodies of the kb tasks; :mod:`server.jobs.app` registers them on an App.

Tasks are async so the worker's event loop stays free (heartbeats, LISTEN/NOTIFY); the
sync itself is blocking (connectors, tokenizer, model, sync SQLAlchemy) and runs on a
worker thread through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from procrastinate import App, JobContext
from procrastinate.exceptions import ConnectorException
from procrastinate.jobs import Status
from sqlalchemy import Engine

from server.embeddings.base import Embedder
from server.ingest import runs
from server.ingest.service import run_sync
from server.settings import Settings

log = logging.getLogger(__name__)

RESOURCES = "kb"
# A worker heartbeats every 10 s; one silent for this long is taken for dead.
STALLED_AFTER_S = 30.0
INTERRUPTED = "interrupted: the worker running this sync stopped (killed or crashed); retried"


@dataclass(frozen=True)
class WorkerResources:
    """What every task of one worker process shares (handed in as additional context)."""

    settings: Settings
    engine: Engine
    embedder: Embedder


def _resources(context: JobContext) -> WorkerResources:
    res: WorkerResources = context.additional_context[RESOURCES]
    return res


async def sync_source(
    context: JobContext, source: str, run_id: int | None = None, timestamp: int | None = None
) -> dict[str, Any]:
    """Sync one source. ``run_id`` is the queued run ``kb sync`` created; scheduled and
    retried attempts record a run of their own."""
    res = _resources(context)
    job = context.job
    if timestamp is not None:
        trigger = "schedule"
    elif job.attempts:
        trigger = "retry"
    else:
        trigger = "manual"
    result = await asyncio.to_thread(
        run_sync,
        res.settings,
        res.engine,
        res.embedder,
        source,
        run_id=run_id,
        trigger=trigger,
        worker=context.worker_name,
        job_id=job.id,
    )
    return {"run_id": result.run_id, "status": result.status, **result.counts.as_dict()}


async def recover_stalled(context: JobContext, timestamp: int) -> int:
    """Periodic: requeue jobs whose worker died; returns how many were recovered."""
    return await recover_stalled_jobs(context.app, _resources(context).engine)


async def recover_stalled_jobs(
    app: App, engine: Engine, *, seconds_since_heartbeat: float = STALLED_AFTER_S
) -> int:
    """Put every job stalled in "doing" back in the queue and fail its interrupted run.

    If a newer sync of the same source already waits in the queue (its queueing lock), the
    stalled one is marked failed instead: the waiting job does the work.
    """
    stalled = list(
        await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat)
    )
    job_ids = [int(job.id) for job in stalled if job.id is not None]
    if not job_ids:
        return 0
    await asyncio.to_thread(_fail_runs, engine, job_ids)
    for job in stalled:
        assert job.id is not None
        try:
            await app.job_manager.retry_job(job)
            log.warning("requeued job %d (%s) left running by a dead worker", job.id, job.task_name)
        except ConnectorException:
            await app.job_manager.finish_job_by_id_async(
                job.id, status=Status.FAILED, delete_job=False
            )
            log.warning("job %d stalled; a newer job of the same source is queued", job.id)
    return len(job_ids)


def _fail_runs(engine: Engine, job_ids: list[int]) -> None:
    with engine.begin() as conn:
        runs.fail_interrupted_runs(conn, job_ids, INTERRUPTED)


__all__ = [
    "RESOURCES",
    "STALLED_AFTER_S",
    "WorkerResources",
    "recover_stalled",
    "recover_stalled_jobs",
    "sync_source",
]
