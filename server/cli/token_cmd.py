"""`kb token`: Development tokens: mint a JWT signed by the local dev key (auth mode dev only)."""

from __future__ import annotations

import typer

from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.cli.common import State, err_console, handle_errors, run_async
from server.cli.operator import offline_admin
from server.settings import Settings

# The console's sign-in page (server.http.console); a constant here keeps the CLI's imports light.
CONSOLE_SIGNIN = "/admin/ui/signin"

app = typer.Typer(
    help="Development tokens: mint a JWT signed by the local dev key (auth mode dev only).",
    no_args_is_help=True,
)


def _record_admin_mint(
    settings: Settings,
    sub: str,
    groups: list[str],
    email: str | None,
    scopes: list[str],
    ttl_s: int,
) -> None:
    """An admin token is an admin action: its row is stored before the token is printed."""
    from server.runtime import prepare_database
    from server.usecases.operations import audited_operation

    target, _ = prepare_database(settings)
    try:
        run_async(
            audited_operation(
                settings,
                target,
                offline_admin(),
                method="token.mint",
                arguments={
                    "sub": sub,
                    "groups": groups,
                    "email": email,
                    "scopes": scopes,
                    "ttl_s": ttl_s,
                    "admin": True,
                },
                run=lambda: None,
            )
        )
    finally:
        target.close()


@app.command()
@handle_errors
def mint(
    sub: str = typer.Option(..., "--sub", help="Subject: the caller becomes user:<sub>."),
    group: list[str] = typer.Option([], "--group", "-g", help="Group (repeatable): group:<name>."),
    email: str | None = typer.Option(None, "--email", help="Verified e-mail: email:<address>."),
    scope: list[str] = typer.Option(
        [], "--scope", "-s", help="Scope (repeatable; default: auth.required_scopes)."
    ),
    admin: bool = typer.Option(
        False, "--admin", help="Also grant the admin scope (auth.admin_scope)."
    ),
    ttl: int | None = typer.Option(
        None, "--ttl", min=60, help="Lifetime in seconds (default: auth.dev_token_ttl_s)."
    ),
    link: bool = typer.Option(
        False,
        "--link",
        help="Print an admin console sign-in link instead of the bare token (the token rides "
        "in the URL fragment, which browsers never send to the server).",
    ),
) -> None:
    """Print a development JWT for SUB, e.g. `export TOKEN=$(kb token mint --sub alice -g eng)`."""
    settings = State.settings()
    if settings.auth.mode != "dev":
        err_console.print(
            f"[yellow]warning:[/] auth.mode is {settings.auth.mode}: this server refuses "
            "development tokens (set auth.mode: dev)",
            highlight=False,
        )
    scopes = list(scope) or list(settings.auth.required_scopes)
    if admin and settings.auth.admin_scope not in scopes:
        scopes.append(settings.auth.admin_scope)
    issuer = DevIssuer(
        settings.home_dir, audience=resource_uri(settings), groups_claim=settings.auth.groups_claim
    )
    ttl_s = ttl or settings.auth.dev_token_ttl_s
    if admin:
        _record_admin_mint(settings, sub, group, email, scopes, ttl_s)
    token = issuer.mint(sub, groups=group, email=email, scopes=scopes, ttl_s=ttl_s)
    if link:
        # The session lives as long as the token: --ttl shortens it.
        typer.echo(f"{settings.http.base_url}{CONSOLE_SIGNIN}#token={token}")
        return
    # Plain stdout, no markup: the output is meant for $(...).
    typer.echo(token)
