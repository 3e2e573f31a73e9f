"""`kb db`: schema migrations."""

from __future__ import annotations

import typer

from server.cli.common import State, console, handle_errors, run_async
from server.cli.operator import confirm_destructive, offline_admin
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
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Migrate the database down to REVISION. Downgrading to base removes all data."""
    from server.usecases.operations import audited_operation

    settings = State.settings()
    confirm_destructive(yes, f"downgrade the database to {revision} (data may be dropped)?")
    admin = offline_admin()
    target, _ = prepare_database(settings, check_schema=False)
    try:
        before = migrate.current_revision(target.url)
        run_async(
            audited_operation(
                settings,
                target,
                admin,
                method="db.downgrade",
                arguments={"from": before, "to": revision},
                run=lambda: migrate.downgrade(target.url, revision),
            )
        )
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
