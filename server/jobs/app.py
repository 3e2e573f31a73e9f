"""The procrastinate application: ingestion jobs queued in the knowledge-base Postgres.

Built by :func:`make_job_app` (never at import time), on ``procrastinate.PsycopgConnector``
whose ``psycopg_pool`` pool opens with the app. Tasks:

* ``kb.sync_source``: one sync of one source. Deferred with ``lock=sync:<source>`` (runs of
  one source never overlap across workers) and ``queueing_lock=sync:<source>`` (at most one
  sync of a source waits in the queue: a second is refused). Transient failures (the source
  or our database went away, another run holds the source) retry with exponential backoff.
* ``kb.recover_stalled_jobs``: every minute, jobs left "doing" by a worker that stopped
  sending heartbeats (killed, crashed, lost its machine) go back to the queue.
* one periodic ``kb.sync_source`` per source with a cron ``schedule``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from croniter import croniter  # type: ignore[import-untyped]
from procrastinate import App, PsycopgConnector, RetryStrategy
from procrastinate.tasks import ConfigureTaskOptions

from core.errors import ConfigError, ConnectorError, DatabaseUnavailable
from server.db.engine import DatabaseTarget
from server.ingest.service import SyncBusy
from server.jobs import tasks

SYNC_TASK = "kb.sync_source"
RECOVER_TASK = "kb.recover_stalled_jobs"
RECOVER_CRON = "* * * * *"

# 2, 4, 8, 16, 32 s between attempts: rides out a restart of the source database.
SYNC_RETRY = RetryStrategy(
    max_attempts=5,
    exponential_wait=2,
    retry_exceptions=[ConnectorError, DatabaseUnavailable, SyncBusy],
)


def sync_lock(source: str) -> str:
    return f"sync:{source}"


def make_job_app(
    target: DatabaseTarget, *, schedules: Mapping[str, str] | None = None, pool_size: int = 4
) -> App:
    """A procrastinate App on the knowledge-base database, with every kb task registered."""
    connector = PsycopgConnector(
        conninfo=target.dsn,
        min_size=1,
        max_size=max(2, pool_size),
        kwargs={"application_name": "kb-jobs"},
    )
    app = App(connector=connector)
    sync = app.task(name=SYNC_TASK, pass_context=True, retry=SYNC_RETRY)(tasks.sync_source)
    recover = app.task(name=RECOVER_TASK, pass_context=True, queueing_lock=RECOVER_TASK)(
        tasks.recover_stalled
    )
    app.periodic(cron=RECOVER_CRON, periodic_id="recover")(recover)
    for source, cron in sorted((schedules or {}).items()):
        if not croniter.is_valid(cron):
            raise ConfigError(f"sources.{source}.schedule: {cron!r} is not a cron expression")
        options: ConfigureTaskOptions = {
            "task_kwargs": {"source": source},
            "lock": sync_lock(source),
            "queueing_lock": sync_lock(source),
        }
        app.periodic_registry.register_task(
            task=cast(Any, sync), cron=cron, periodic_id=f"sync:{source}", configure_kwargs=options
        )
    return app


__all__ = ["RECOVER_TASK", "SYNC_RETRY", "SYNC_TASK", "make_job_app", "sync_lock"]
