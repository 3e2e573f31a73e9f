"""The `kb` command: one entry point for operators, admins and developers.

Subcommands load on demand. `kb --help` lists them from the summaries below without
importing a single command module, and `kb policy list` imports the policy commands only:
the server, the MCP stack, the model and the parsers stay out of commands that do not
need them. ``tests/cli/test_startup.py`` keeps each summary equal to its command's help.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from server import __version__
from server.cli.common import State, console


class LazyCommand(NamedTuple):
    """Where a subcommand lives: a typer app (a group) or a command function."""

    module: str
    attribute: str
    summary: str  # the first paragraph of its help, shown by `kb --help`


LAZY_COMMANDS: dict[str, LazyCommand] = {
    "serve": LazyCommand(
        "server.cli.serve",
        "serve",
        "Start the server: database, migrations, model, then HTTP on host:port (MCP at /mcp).",
    ),
    "mcp": LazyCommand(
        "server.cli.mcp_cmd",
        "mcp",
        "Serve MCP over stdin/stdout; the host (Claude Desktop, Cursor, ...) starts this command.",
    ),
    "search": LazyCommand(
        "server.cli.search_cmd",
        "search",
        "Search as a given user would: only what their policies let them read.",
    ),
    "sync": LazyCommand(
        "server.cli.sync_cmd",
        "sync",
        "Sync SOURCE: queue it for `kb worker` (default), or run it here with --inline.",
    ),
    "worker": LazyCommand(
        "server.cli.worker_cmd",
        "worker",
        "Run ingestion jobs until interrupted: queued syncs, cron schedules, stalled-job recovery.",
    ),
    "db": LazyCommand("server.cli.db", "app", "Create and migrate the knowledge-base schema."),
    "config": LazyCommand("server.cli.config_cmd", "app", "Inspect the effective configuration."),
    "sources": LazyCommand(
        "server.cli.sources_cmd",
        "app",
        "Register, inspect and remove sources (databases, document folders).",
    ),
    "jobs": LazyCommand(
        "server.cli.jobs_cmd",
        "app",
        "Ingestion runs: list them and show one run's counts and failures.",
    ),
    "policy": LazyCommand(
        "server.cli.policy_cmd",
        "app",
        "Access policies: list, add, remove, import, export, lint, test, explain, who-can, diff.",
    ),
    "token": LazyCommand(
        "server.cli.token_cmd",
        "app",
        "Development tokens: mint a JWT signed by the local dev key (auth mode dev only).",
    ),
    "keys": LazyCommand(
        "server.cli.keys_cmd",
        "app",
        "API keys for service accounts: create, list, revoke, rotate.",
    ),
    "audit": LazyCommand(
        "server.cli.audit_cmd",
        "app",
        "The audit log of every MCP and admin call: tail and export.",
    ),
    "backup": LazyCommand(
        "server.cli.backup_cmd",
        "backup",
        "Back up the knowledge base into FILE: policies, sources and cursors, documents, chunks "
        "and embeddings, API keys (hashes), the audit log, and the configuration, secrets "
        "masked.",
    ),
    "restore": LazyCommand(
        "server.cli.backup_cmd",
        "restore",
        "Restore FILE (from `kb backup`) into this kb's database, which must be empty.",
    ),
}


def load_command(name: str) -> Any:
    """Import one subcommand and build its click command (typer's copy of click: Any)."""
    spec = LAZY_COMMANDS[name]
    target = getattr(importlib.import_module(spec.module), spec.attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name=name)(target)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A typer group whose subcommands are imported only when run or asked for help."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *LAZY_COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        eager = super().get_command(ctx, cmd_name)
        if eager is not None or cmd_name not in LAZY_COMMANDS:
            return eager
        if self._listing:
            # Only the name and summary are shown: no need to import the module.
            return TyperCommand(cmd_name, help=LAZY_COMMANDS[cmd_name].summary)
        return load_command(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="kb",
    cls=LazyGroup,
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


__all__ = ["LAZY_COMMANDS", "LazyCommand", "LazyGroup", "app", "load_command"]
