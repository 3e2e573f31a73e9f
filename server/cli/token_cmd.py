"""`kb token`: Development tokens: mint a JWT signed by the local dev key (auth mode dev only)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Development tokens: mint a JWT signed by the local dev key (auth mode dev only).", no_args_is_help=True)
