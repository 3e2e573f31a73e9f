"""`kb jobs`: Ingestion runs: list them and show one run's counts and failures."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from server.cli.common import console, handle_errors
from server.cli.operator import run_admin
from server.cli.sync_cmd import counts_line
from server.usecases import sources

app = typer.Typer(
    help="Ingestion runs: list them and show one run's counts and failures.", no_args_is_help=True
)

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan", "queued": "yellow"}


@app.command("list")
@handle_errors
def list_(
    source: str | None = typer.Option(None, "--source", "-s", help="Only runs of this source."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="Newest runs shown."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the newest ingest runs with their counts."""
    runs = run_admin(lambda rt, admin: sources.list_jobs(rt, admin, source=source, limit=limit))
    if as_json:
        console.print_json(json.dumps(runs))
        return
    table = Table(
        "run",
        "source",
        "status",
        "trigger",
        "started",
        "s",
        "seen",
        "added",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "chunks",
    )
    for r in runs:
        style = STATUS_STYLE.get(r["status"], "")
        table.add_row(
            str(r["id"]),
            r["source"],
            f"[{style}]{r['status']}[/]" if style else r["status"],
            r["trigger"],
            (r["started_at"] or "")[:19],
            str(r["duration_s"] or ""),
            *(
                str(r[k])
                for k in (
                    "docs_seen",
                    "docs_added",
                    "docs_updated",
                    "docs_unchanged",
                    "docs_deleted",
                    "docs_failed",
                    "chunks_written",
                )
            ),
        )
    console.print(table if runs else "no ingest runs yet")


@app.command()
@handle_errors
def show(
    run: int = typer.Argument(..., help="Run id (see `kb jobs list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one run: status, timings, counts, error, and every failed document with its reason."""
    view = run_admin(lambda rt, admin: sources.get_job(rt, admin, run))
    if as_json:
        console.print_json(json.dumps(view))
        return
    style = STATUS_STYLE.get(view["status"], "")
    status = f"[{style}]{view['status']}[/]" if style else view["status"]
    where = f"{view['trigger']}, job {view['job_id']}, worker {view['worker'] or '-'}"
    console.print(f"run {view['id']} of [bold]{view['source']}[/]: {status} ({where})")
    console.print(
        f"queued {view['queued_at']}  started {view['started_at']}  "
        f"finished {view['finished_at']}  duration {view['duration_s']} s"
    )
    console.print(counts_line(view) + f" · {view['bytes_read']} bytes")
    if view.get("still_failing"):
        console.print(
            f"[yellow]{view['still_failing']} documents of the source still failing[/] at the "
            f"end of this run (`kb sources show {view['source']}`)"
        )
    if view.get("truncated_documents"):
        console.print(f"{view['truncated_documents']} documents stored truncated")
    if view["error"]:
        console.print(f"[red]error:[/] {view['error']}", highlight=False)
    if view["failures"]:
        table = Table("document", "reason", title=f"{len(view['failures'])} failed documents")
        for f in view["failures"]:
            table.add_row(f["external_id"], f["reason"])
        console.print(table)
