"""`kb db`: schema migrations."""

from __future__ import annotations

import typer

from server.cli.common import State, console, handle_errors
from server.db import migrate
from server.db.engine import describe
from server.runtime import prepare_database

app = typer.Typer(help="Create and migrate the knowledge-base schema.", no_args_is_help=True)


@app.command()
@handle_errors
def upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: the newest)."),
) -> None:
    """Migrate the database to REVISION (default head), creating the schema if empty."""
    settings = State.settings()
    target, _ = prepare_database(settings, check_schema=False)
    try:
        with console.status(f"migrating {describe(target.url)} to {revision}"):
            migrate.upgrade(target.url, revision)
        console.print(f"[green]database at {migrate.current_revision(target.url)}[/]")
    finally:
        target.close()


@app.command()
@handle_errors
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base (drops data!)."),
) -> None:
    """Migrate the database down to REVISION. Downgrading to base removes all data."""
    settings = State.settings()
    target, _ = prepare_database(settings, check_schema=False)
    try:
        migrate.downgrade(target.url, revision)
        console.print(f"database at {migrate.current_revision(target.url) or 'base (empty)'}")
    finally:
        target.close()


@app.command()
@handle_errors
def current() -> None:
    """Show the database's revision and whether it is the newest (head)."""
    settings = State.settings()
    target, _ = prepare_database(settings, check_schema=False)
    try:
        rev = migrate.current_revision(target.url)
        head = migrate.head_revision()
        state = "(head)" if rev == head else f"(behind: head is {head})"
        console.print(f"{rev or 'base (empty)'} {state}")
    finally:
        target.close()
