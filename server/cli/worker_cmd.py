"""`kb worker`: run ingestion jobs (syncs, schedules, stalled-job recovery).

The worker survives its database: it reconnects with backoff when the database goes away
(:func:`~server.jobs.worker.run_worker_until_stopped`), and restarts the embedded server
if it was the one to die. SIGTERM stops it as cleanly as Ctrl-C.
"""

from __future__ import annotations

import typer

from server.cli.common import State, configure_logging, console, handle_errors, run_async
from server.cli.db_watch import EmbeddedWatchdog
from server.cli.signals import stop_signals_unwind
from server.db.engine import describe
from server.jobs.worker import run_worker_until_stopped
from server.observability.metrics import serve_process_metrics
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
    configure_logging(settings.log_level, settings.logging.format)
    serve_process_metrics(settings.metrics.worker_port, settings.metrics.worker_host)
    with stop_signals_unwind():
        target, _ = prepare_database(settings)
        try:
            console.print(f"worker on {describe(target.url)}; Ctrl-C to stop")
            with EmbeddedWatchdog(target):
                run_async(run_worker_until_stopped(settings, target, concurrency=concurrency))
        finally:
            target.close()


__all__ = ["worker"]
