"""`kb keys`: API keys for service accounts: create, list, revoke, rotate."""

from __future__ import annotations

import typer

app = typer.Typer(help="API keys for service accounts: create, list, revoke, rotate.", no_args_is_help=True)
