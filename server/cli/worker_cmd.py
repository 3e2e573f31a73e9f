"""`kb worker`: run ingestion jobs (syncs, schedules, stalled-job recovery)."""

from __future__ import annotations

import typer

from server.cli.common import State, configure_logging, console, handle_errors, run_async
from server.db.engine import describe
from server.jobs.worker import run_worker
from server.runtime import prepare_database


@handle_errors
def worker(
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        max=32,
        help="Jobs run at once (default: ingest.worker_concurrency).",
    ),
) -> None:
    """Run ingestion jobs until interrupted: queued syncs, cron schedules, stalled-job recovery.

    Start more workers (on more machines, against the same database) to ingest more at once."""
    settings = State.settings()
    configure_logging(settings.log_level)
    target, _ = prepare_database(settings)
    try:
        console.print(f"worker on {describe(target.url)}; Ctrl-C to stop")
        run_async(run_worker(settings, target, concurrency=concurrency))
    finally:
        target.close()


__all__ = ["worker"]
