"""`kb mcp`: serve MCP over stdio for desktop hosts (Claude Desktop, Claude Code, Cursor)."""

from __future__ import annotations

import logging
import sys

import typer

from server.cli.common import State, handle_errors, run_async
from server.mcp.stdio import serve_stdio, stdio_caller


def _principal(value: str, default_prefix: str) -> str:
    value = value.strip()
    return value if ":" in value else f"{default_prefix}{value}"


@handle_errors
def mcp(
    as_: str | None = typer.Option(
        None,
        "--as",
        help="Whom the assistant acts for: user:NAME (default: stdio.principals from the config).",
    ),
    group: list[str] = typer.Option(
        [], "--group", "-g", help="A group of that user (repeatable): group:NAME or NAME."
    ),
) -> None:
    """Serve MCP over stdin/stdout; the host (Claude Desktop, Cursor, ...) starts this command.

    Everything the assistant reads is limited to what the given user may read.
    """
    settings = State.settings()
    if as_ is not None:
        principals = [_principal(as_, "user:"), *(_principal(g, "group:") for g in group)]
    elif group:
        principals = [*settings.stdio.principals, *(_principal(g, "group:") for g in group)]
    else:
        principals = list(settings.stdio.principals)
    caller = stdio_caller(principals)
    # stdout carries the protocol: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("sentence_transformers", "transformers", "httpx", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_async(serve_stdio(settings, caller))
