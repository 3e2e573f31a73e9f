"""Queue a sync of a source: a ``queued`` ingest run plus a procrastinate job that runs it.

Blocking (sync SQLAlchemy engine and procrastinate's synchronous connector): the CLI calls
it directly, the admin API through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass

from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import Engine

from core.errors import InvalidRequest
from server.db.engine import DatabaseTarget
from server.ingest import repository, runs
from server.ingest.service import SourceDisabled
from server.ingest.sources import resolve_config, upsert_configured_sources
from server.jobs.app import SYNC_TASK, make_job_app, sync_lock
from server.settings import Settings


class SyncAlreadyQueued(InvalidRequest):
    """A sync of this source already waits in the queue (its queueing lock is taken)."""


@dataclass(frozen=True)
class QueuedSync:
    run_id: int
    job_id: int


def enqueue_sync(
    settings: Settings,
    target: DatabaseTarget,
    engine: Engine,
    name: str,
    *,
    trigger: str = "manual",
) -> QueuedSync:
    with engine.begin() as conn:
        upsert_configured_sources(conn, settings)
        config = resolve_config(conn, settings, name)
    if not config.enabled:
        raise SourceDisabled(f"source {name!r} is disabled")
    run_id = runs.create_queued_run(engine, name, trigger=trigger)
    app = make_job_app(target, pool_size=1)
    try:
        with app.open():
            job_id = (
                app.tasks[SYNC_TASK]
                .configure(lock=sync_lock(name), queueing_lock=sync_lock(name))
                .defer(source=name, run_id=run_id)
            )
    except AlreadyEnqueued:
        with engine.begin() as conn:
            repository.delete_run(conn, run_id)
        raise SyncAlreadyQueued(f"a sync of source {name!r} is already queued") from None
    except BaseException:
        with engine.begin() as conn:
            repository.delete_run(conn, run_id)
        raise
    with engine.begin() as conn:
        repository.update_run(conn, run_id, job_id=job_id)
    return QueuedSync(run_id, job_id)


__all__ = ["QueuedSync", "SyncAlreadyQueued", "enqueue_sync"]
