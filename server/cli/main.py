"""The `kb` command: one entry point for operators, admins and developers."""

from __future__ import annotations

from pathlib import Path

import typer

from server import __version__
from server.cli import (
    audit_cmd,
    config_cmd,
    db,
    jobs_cmd,
    keys_cmd,
    mcp_cmd,
    policy_cmd,
    search_cmd,
    sources_cmd,
    sync_cmd,
    token_cmd,
    worker_cmd,
)
from server.cli.common import State, console
from server.cli.serve import serve

app = typer.Typer(
    name="kb",
    help=(
        "kb: an enterprise knowledge base for LLM assistants over MCP.\n\n"
        "Start here: `kb serve` runs the server; `kb sources list` shows what is ingested; "
        "`kb search 'question' --as user:alice` searches as a user would."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        envvar="KB_CONFIG",
        help="YAML configuration file (default: kb.yaml in the working directory, if present).",
    ),
) -> None:
    State.reset()
    State.config_file = config


@app.command()
def version() -> None:
    """Print the kb version."""
    console.print(f"kb {__version__}")


app.command(name="serve")(serve)
app.command(name="mcp")(mcp_cmd.mcp)
app.command(name="search")(search_cmd.search)
app.command(name="sync")(sync_cmd.sync)
app.command(name="worker")(worker_cmd.worker)
app.add_typer(db.app, name="db")
app.add_typer(config_cmd.app, name="config")
app.add_typer(sources_cmd.app, name="sources")
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(token_cmd.app, name="token")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(audit_cmd.app, name="audit")

__all__ = ["app"]
