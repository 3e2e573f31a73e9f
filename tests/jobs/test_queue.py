"""procrastinate jobs: one queued sync per source, a worker runs it, schedules register."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from core.errors import ConfigError, NotFound
from server.embeddings.base import Embedder
from server.jobs.app import RECOVER_TASK, SYNC_TASK, make_job_app
from server.jobs.enqueue import SyncAlreadyQueued, enqueue_sync
from server.jobs.worker import run_worker
from server.settings import Settings
from tests.ingest.helpers import live_documents, run_row
from tests.jobs.conftest import target_of


@pytest.mark.anyio
async def test_a_second_queued_sync_is_refused_and_a_worker_runs_the_first(
    jobs_settings: Settings, jobs_engine: Engine, embedder: Embedder
) -> None:
    target = target_of(jobs_settings)
    queued = enqueue_sync(jobs_settings, target, jobs_engine, "notes")
    with pytest.raises(SyncAlreadyQueued, match="already queued"):
        enqueue_sync(jobs_settings, target, jobs_engine, "notes")
    with pytest.raises(NotFound):
        enqueue_sync(jobs_settings, target, jobs_engine, "nope")
    with jobs_engine.connect() as conn:
        job = conn.execute(
            text("SELECT task_name, lock, queueing_lock, status, args FROM procrastinate_jobs")
        ).one()
        runs = conn.execute(text("SELECT id, status FROM ingest_runs")).all()
    assert (job.task_name, job.lock, job.queueing_lock, job.status) == (
        SYNC_TASK,
        "sync:notes",
        "sync:notes",
        "todo",
    )
    assert job.args == {"source": "notes", "run_id": queued.run_id}
    assert [tuple(r) for r in runs] == [(queued.run_id, "queued")]  # the refused one left no run

    await run_worker(
        jobs_settings, target, embedder=embedder, wait=False, install_signal_handlers=False
    )

    run = run_row(jobs_engine, queued.run_id)
    assert run["status"] == "succeeded" and run["job_id"] == queued.job_id
    assert run["docs_added"] == 6 and run["worker"].startswith("kb-worker@")
    assert len(live_documents(jobs_engine, "notes")) == 6
    with jobs_engine.connect() as conn:
        statuses = conn.execute(
            text("SELECT task_name, status FROM procrastinate_jobs ORDER BY id")
        ).all()
    assert ("kb.sync_source", "succeeded") in [tuple(s) for s in statuses]
    # The queue is free again once the job ran.
    enqueue_sync(jobs_settings, target, jobs_engine, "notes")


def test_schedules_become_periodic_tasks(jobs_settings: Settings) -> None:
    target = target_of(jobs_settings)
    app = make_job_app(target, schedules={"notes": "*/5 * * * *"})
    periodic = app.periodic_registry.periodic_tasks
    assert set(periodic) == {(RECOVER_TASK, "recover"), (SYNC_TASK, "sync:notes")}
    sync_task = periodic[(SYNC_TASK, "sync:notes")]
    assert sync_task.cron == "*/5 * * * *"
    assert sync_task.configure_kwargs["queueing_lock"] == "sync:notes"
    assert sync_task.configure_kwargs["task_kwargs"] == {"source": "notes"}
    assert periodic[(RECOVER_TASK, "recover")].cron == "* * * * *"
    with pytest.raises(ConfigError, match="not a cron"):
        make_job_app(target, schedules={"notes": "every tuesday"})
