"""`kb policy`: Access policies: list, add, remove, import, export, lint, test, explain, who-can, diff."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Access policies: list, add, remove, import, export, lint, test, explain, who-can, diff.",
    no_args_is_help=True,
)
