"""`kb audit`: The audit log of every MCP and admin call: tail and export."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

import typer

from core.errors import InvalidRequest
from server.audit import repository
from server.audit.cli_calls import admin_runtime, audit_cli_call
from server.cli.common import State, handle_errors, run_async
from server.db.models import AuditEntry

app = typer.Typer(
    help="The audit log of every MCP and admin call: tail and export.", no_args_is_help=True
)

CSV_FIELDS = [
    "id",
    "at",
    "principals",
    "client_id",
    "transport",
    "method",
    "target",
    "arguments",
    "document_ids",
    "chunk_ids",
    "policy_version",
    "outcome",
    "error",
    "latency_ms",
]


def _line(row: AuditEntry) -> str:
    return json.dumps(repository.as_dict(row), ensure_ascii=False)


async def _tail(n: int, follow: bool, interval: float) -> None:
    async with admin_runtime(State.settings()) as runtime:
        await audit_cli_call(runtime, "audit tail", "ok", {"n": n, "follow": follow})
        async with runtime.db.sessions() as session:
            rows = await repository.tail(session, limit=n)
        last = rows[-1].id if rows else 0
        for row in rows:
            typer.echo(_line(row))
        while follow:
            await asyncio.sleep(interval)
            async with runtime.db.sessions() as session:
                new = await repository.after(session, last)
            for row in new:
                typer.echo(_line(row))
                last = row.id


@app.command()
@handle_errors
def tail(
    n: int = typer.Option(20, "-n", "--lines", min=1, max=10_000, help="Rows to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new rows."),
    interval: float = typer.Option(1.0, min=0.1, help="Seconds between polls with --follow."),
) -> None:
    """Print the newest audit rows as JSON lines (oldest first)."""
    # Ctrl-C ends --follow quietly.
    with contextlib.suppress(KeyboardInterrupt):
        run_async(_tail(n, follow, interval))


def _parse_since(since: str) -> datetime:
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        raise InvalidRequest(f"--since {since!r} is not an ISO date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _export(since: datetime, fmt: str, out: IO[str]) -> int:
    count = 0
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    async with admin_runtime(State.settings()) as runtime:
        await audit_cli_call(
            runtime, "audit export", "ok", {"since": since.isoformat(), "format": fmt}
        )
        async for row in repository.export_since(runtime.db, since):
            if writer:
                data = repository.as_dict(row)
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                        for k, v in data.items()
                    }
                )
            else:
                out.write(_line(row) + "\n")
            count += 1
    return count


@app.command()
@handle_errors
def export(
    since: str = typer.Option(..., "--since", help="ISO date or time (UTC if no zone)."),
    fmt: Literal["jsonl", "csv"] = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Export every audit row since a time, in id order."""
    when = _parse_since(since)
    if output is None:
        run_async(_export(when, fmt, sys.stdout))
        return
    with output.open("w", encoding="utf-8", newline="") as fh:
        count = run_async(_export(when, fmt, fh))
    typer.echo(f"wrote {count} rows to {output}", err=True)
