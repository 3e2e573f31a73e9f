"""`kb sync SOURCE`: queue a sync for a worker, follow it, or run it in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from core.errors import KBError
from server.cli.common import State, configure_logging, console, fail, handle_errors
from server.cli.operator import run_admin
from server.db.engine import DatabaseTarget, make_sync_engine
from server.embeddings import Embedder, load_embedder
from server.ingest import repository
from server.ingest.runs import FINAL_STATUSES, RunCounts, run_view
from server.ingest.service import run_sync
from server.runtime import prepare_database
from server.settings import Settings
from server.usecases import sources

POLL_S = 0.5


@contextmanager
def open_database(settings: Settings) -> Iterator[tuple[DatabaseTarget, Engine]]:
    """The (migrated) knowledge-base database and a sync engine on it, for one command."""
    target, _ = prepare_database(settings)
    engine = make_sync_engine(target, settings)
    try:
        yield target, engine
    finally:
        engine.dispose()
        target.close()


def counts_line(counts: RunCounts | dict[str, Any]) -> str:
    c = counts.as_dict() if isinstance(counts, RunCounts) else counts
    return (
        f"{c['docs_seen']} seen · {c['docs_added']} added · {c['docs_updated']} updated · "
        f"{c['docs_unchanged']} unchanged · {c['docs_deleted']} deleted · "
        f"{c['docs_failed']} failed · {c['chunks_written']} chunks"
        + (f" · {c['acl_updated']} authorization-only" if c.get("acl_updated") else "")
    )


def follow_run(
    engine: Engine, run_id: int, *, done: threading.Event | None = None
) -> dict[str, Any]:
    """Show a live progress bar from the run's row until it reaches a final status."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("queued", total=None, counts="waiting for a worker")
        expected: int | None = None
        while True:
            with engine.connect() as conn:
                row = repository.get_run(conn, run_id)
                if row is not None and expected is None:
                    # The documents stored before the run: the bar's best guess of the total.
                    expected = repository.live_document_counts(conn).get(row["source"], 0)
            if row is None:
                raise KBError(f"ingest run {run_id} disappeared")
            view = run_view(row)
            seen = view["docs_seen"]
            total = max(expected or 0, seen) or None
            progress.update(
                task,
                description=f"{view['source']}: {view['status']}",
                counts=counts_line(view),
                completed=seen,
                total=total if view["status"] == "running" else (seen or 1),
            )
            if view["status"] in FINAL_STATUSES and (done is None or done.is_set()):
                return view
            time.sleep(POLL_S)


def report(view: dict[str, Any]) -> None:
    if view["status"] == "succeeded":
        console.print(f"[green]run {view['id']} succeeded[/] in {view['duration_s']} s")
    else:
        raise fail(f"run {view['id']} {view['status']}: {view['error'] or 'no reason recorded'}")


@handle_errors
def sync(
    source: str = typer.Argument(..., help="Name of the source to sync."),
    wait: bool = typer.Option(False, "--wait", help="Follow the queued run with a progress bar."),
    inline: bool = typer.Option(
        False, "--inline", help="Run the sync in this process instead of queueing it."
    ),
    full: bool = typer.Option(
        False, "--full", help="With --inline: read everything instead of polling since the cursor."
    ),
) -> None:
    """Sync SOURCE: queue it for `kb worker` (default), or run it here with --inline."""
    settings = State.settings()
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    if inline:
        run_admin(
            lambda rt, admin: sources.sync_here(
                rt,
                admin,
                source,
                full=full,
                run=lambda engine: sync_inline(settings, engine, source, full=full),
            )
        )
        return
    run_id, job_id = run_admin(lambda rt, admin: sources.sync_source(rt, admin, source))
    console.print(f"queued run {run_id} (job {job_id}) for source {source!r}")
    if wait:
        with open_database(settings) as (_, engine):
            report(follow_run(engine, run_id))
    else:
        console.print(f"follow it with `kb jobs show {run_id}`; a `kb worker` runs it")


def sync_inline(
    settings: Settings,
    engine: Engine,
    source: str,
    *,
    full: bool = False,
    embedder: Embedder | None = None,
) -> None:
    """Run the sync on a thread while the progress bar follows it.

    Pass ``embedder`` to reuse a model the process already loaded (``kb serve``).
    """
    if embedder is None:
        with console.status("loading the embedding model"):
            embedder = load_embedder(settings.embedding)
    started = threading.Event()
    done = threading.Event()
    box: dict[str, Any] = {}

    def began(run_id: int) -> None:
        box["run_id"] = run_id
        started.set()

    def work() -> None:
        try:
            box["result"] = run_sync(
                settings,
                engine,
                embedder,
                source,
                trigger="inline",
                full=full,
                on_start=began,
            )
        except BaseException as exc:
            box["error"] = exc
        finally:
            started.set()
            done.set()

    thread = threading.Thread(target=work, name="kb-sync-inline", daemon=True)
    thread.start()
    started.wait()
    if "run_id" not in box:
        thread.join()
        raise box["error"]  # refused before a run began (unknown source, busy, ...)
    view = follow_run(engine, box["run_id"], done=done)
    thread.join()
    report(view)  # a failed run exits non-zero with the error the run recorded


__all__ = ["counts_line", "follow_run", "open_database", "sync", "sync_inline"]
