"""`kb keys`: API keys for service accounts: create, list, revoke, rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.table import Column, Table

from core.errors import InvalidRequest, KBError
from server.audit.cli_calls import admin_runtime, audit_cli_call, operator
from server.auth.api_keys import KeyInfo, NewKey
from server.cli.common import State, console, err_console, handle_errors, run_async

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


async def _audited(method: str, arguments: dict[str, Any], action: Any) -> Any:
    async with admin_runtime(State.settings()) as runtime:
        try:
            result = await action(runtime.auth.api_keys)
        except KBError:
            await audit_cli_call(runtime, method, "invalid", arguments)
            raise
        await audit_cli_call(runtime, method, "ok", arguments)
        return result


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
    expires_at = _parse_expiry(expires, days)
    args = {"name": name, "sources": source, "collections": collection}
    new: NewKey = run_async(
        _audited(
            "keys create",
            args,
            lambda svc: svc.create(
                name,
                created_by=operator(),
                expires_at=expires_at,
                scopes=scope or None,
                sources=source or None,
                collections=collection or None,
            ),
        )
    )
    _show_new(new)


@app.command(name="list")
@handle_errors
def list_(
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
) -> None:
    """List API keys (prefix, principal, status, limits, last use); never secrets."""
    keys: list[KeyInfo] = run_async(
        _audited("keys list", {"all": all_}, lambda svc: svc.list(include_revoked=all_))
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
    for k in keys:
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
    info: KeyInfo = run_async(
        _audited("keys revoke", {"key": ref}, lambda svc: svc.revoke(ref, by=operator()))
    )
    console.print(f"revoked API key {info.prefix} ({info.principal})")


@app.command()
@handle_errors
def rotate(
    ref: str = typer.Argument(..., help="Key id or prefix (from `kb keys list`)."),
    grace: int = typer.Option(0, min=0, help="Seconds the old key keeps working."),
) -> None:
    """Issue a new key with the same name and limits, and retire the old one."""
    new: NewKey = run_async(
        _audited(
            "keys rotate",
            {"key": ref, "grace_s": grace},
            lambda svc: svc.rotate(ref, by=operator(), grace=timedelta(seconds=grace)),
        )
    )
    _show_new(new)
