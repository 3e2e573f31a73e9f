"""`kb config`: inspect the effective configuration."""

from __future__ import annotations

import typer
import yaml

from server.cli.common import State, console, handle_errors
from server.settings import masked_dump

app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@app.command()
@handle_errors
def show(
    fmt: str = typer.Option("yaml", "--format", help="yaml or json."),
) -> None:
    """Print the configuration in effect (file + KB_* environment + defaults), secrets masked."""
    data = masked_dump(State.settings())
    if fmt == "json":
        console.print_json(data=data)
    else:
        console.print(yaml.safe_dump(data, sort_keys=False), highlight=False, markup=False)
