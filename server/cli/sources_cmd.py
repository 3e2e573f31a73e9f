"""`kb sources`: Register, inspect and remove sources (databases, document folders)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Register, inspect and remove sources (databases, document folders).", no_args_is_help=True)
