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
from policies.capability import mint_admin
from server.cli.common import State, handle_errors, run_async
from server.usecases import audit_log
from server.usecases.admin import cli_operator

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
    "request_id",
]


def _line(row: dict[str, object]) -> str:
    return json.dumps(row, ensure_ascii=False)


async def _tail(n: int, follow: bool, interval: float) -> None:
    from server.runtime import open_runtime

    settings = State.settings()
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        admin = mint_admin(cli_operator(), rt.policies)
        rows = await audit_log.read_audit(rt, admin, audit_log.AuditQuery(limit=n))
        last = int(str(rows[-1]["id"])) if rows else 0
        for row in rows:
            typer.echo(_line(row))
        while follow:
            await asyncio.sleep(interval)
            for row in await audit_log.rows_after(rt, admin, last):
                typer.echo(_line(row))
                last = int(str(row["id"]))


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
    from server.runtime import open_runtime

    count = 0
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    async with open_runtime(State.settings(), load_model=False, watch_policies=False) as rt:
        admin = mint_admin(cli_operator(), rt.policies)
        async for data in audit_log.export_audit(rt, admin, since, fmt=fmt):
            if writer:
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                        for k, v in data.items()
                    }
                )
            else:
                out.write(_line(data) + "\n")
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
