"""`kb jobs`: Ingestion runs: list them and show one run's counts and failures."""

from __future__ import annotations

import typer

app = typer.Typer(help="Ingestion runs: list them and show one run's counts and failures.", no_args_is_help=True)
