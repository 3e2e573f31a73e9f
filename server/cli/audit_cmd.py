"""`kb audit`: The audit log of every MCP and admin call: tail and export."""

from __future__ import annotations

import typer

app = typer.Typer(help="The audit log of every MCP and admin call: tail and export.", no_args_is_help=True)
