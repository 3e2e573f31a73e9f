"""`kb keys`: API keys for service accounts: create, list, revoke, rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer
from rich.table import Column, Table

from core.errors import InvalidRequest
from server.cli.common import console, err_console, handle_errors
from server.cli.operator import run_admin
from server.usecases import keys
from server.usecases.keys import KeyRequest

if TYPE_CHECKING:
    from server.auth.api_keys import KeyInfo, NewKey

app = typer.Typer(
    help="API keys for service accounts: create, list, revoke, rotate.", no_args_is_help=True
)


def _parse_expiry(expires: str | None, days: int | None) -> datetime | None:
    if expires and days:
        raise InvalidRequest("give --expires or --days, not both")
    if days:
        return datetime.now(UTC) + timedelta(days=days)
    if not expires:
        return None
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        raise InvalidRequest(f"--expires {expires!r} is not an ISO date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _show_new(new: NewKey) -> None:
    err_console.print(
        f"created API key [bold]{new.info.prefix}[/] for {new.info.principal}"
        + (f", expires {new.info.expires_at:%Y-%m-%d %H:%M %Z}" if new.info.expires_at else "")
        + ". This is the only time the key is shown:",
        highlight=False,
    )
    typer.echo(new.secret)


@app.command()
@handle_errors
def create(
    name: str = typer.Argument(..., help="Service account name; the key acts as svc:<name>."),
    expires: str | None = typer.Option(None, help="Expiry as ISO date/time (UTC if no zone)."),
    days: int | None = typer.Option(None, min=1, help="Expiry in days from now."),
    scope: list[str] = typer.Option([], "--scope", help="Scope (repeatable; default: required)."),
    source: list[str] = typer.Option([], "--source", help="Restrict to this source (repeatable)."),
    collection: list[str] = typer.Option(
        [], "--collection", help="Restrict to this collection (repeatable)."
    ),
) -> None:
    """Create an API key and print it once (stdout); details go to stderr."""
    wanted = KeyRequest(
        name=name,
        expires_at=_parse_expiry(expires, days),
        scopes=scope or None,
        sources=source or None,
        collections=collection or None,
    )
    _show_new(run_admin(lambda rt, admin: keys.create_key(rt, admin, wanted)))


@app.command(name="list")
@handle_errors
def list_(
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
) -> None:
    """List API keys (prefix, principal, status, limits, last use); never secrets."""
    found: list[KeyInfo] = run_admin(
        lambda rt, admin: keys.list_keys(rt, admin, include_revoked=all_)
    )
    # Prefix and principal are what people copy: never wrap them.
    table = Table(
        Column("prefix", no_wrap=True),
        Column("principal", no_wrap=True),
        "status",
        "scopes",
        "restricted to",
        "expires",
        "last used",
    )
    for k in found:
        limits = [f"source:{s}" for s in k.sources or []] + [
            f"collection:{c}" for c in k.collections or []
        ]
        table.add_row(
            k.prefix,
            k.principal,
            k.status,
            " ".join(k.scopes),
            ", ".join(limits) or "-",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
        )
    console.print(table)


@app.command()
@handle_errors
def revoke(ref: str = typer.Argument(..., help="Key id or prefix (from `kb keys list`).")) -> None:
    """Revoke an API key at once."""
    info = run_admin(lambda rt, admin: keys.revoke_key(rt, admin, ref))
    console.print(f"revoked API key {info.prefix} ({info.principal})")


@app.command()
@handle_errors
def rotate(
    ref: str = typer.Argument(..., help="Key id or prefix (from `kb keys list`)."),
    grace: int = typer.Option(0, min=0, help="Seconds the old key keeps working."),
) -> None:
    """Issue a new key with the same name and limits, and retire the old one."""
    _show_new(run_admin(lambda rt, admin: keys.rotate_key(rt, admin, ref, grace_s=grace)))
