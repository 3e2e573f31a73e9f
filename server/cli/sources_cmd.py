"""`kb sources`: Register, inspect and remove sources (databases, document folders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from core.errors import ConfigError, ConnectorError, InvalidRequest
from server.cli.common import console, handle_errors
from server.cli.operator import confirm_destructive, run_admin
from server.cli.sync_cmd import counts_line
from server.usecases import sources

app = typer.Typer(
    help="Register, inspect and remove sources (databases, document folders).",
    no_args_is_help=True,
)


def load_definition(
    file: Path | None, name: str | None, kind: str | None, options: list[str]
) -> dict[str, Any]:
    """A source definition from a YAML/JSON file and/or inline options (options win)."""
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))  # JSON is YAML too
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror or exc}") from None
        except yaml.YAMLError:
            raise ConfigError(f"{file} is neither valid YAML nor JSON") from None
        if isinstance(data, dict) and isinstance(data.get("sources"), list):
            if len(data["sources"]) != 1:
                raise ConfigError(f"{file} defines {len(data['sources'])} sources; give one")
            data = data["sources"][0]
        if not isinstance(data, dict):
            raise ConfigError(f"{file} must hold one source as a mapping (name, kind, ...)")
        raw.update(data)
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {option!r}")
        try:
            raw[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            raw[key.strip()] = value
    if name is not None:
        raw["name"] = name
    if kind is not None:
        raw["kind"] = kind
    if not raw:
        raise ConfigError("give a definition file or --name, --kind and --set KEY=VALUE options")
    return raw


@app.command()
@handle_errors
def add(
    file: Path | None = typer.Argument(None, help="YAML or JSON file defining one source."),
    name: str | None = typer.Option(None, "--name", help="Source name (overrides the file)."),
    kind: str | None = typer.Option(None, "--kind", help="Connector kind: files, sql, ..."),
    options: list[str] = typer.Option(
        [], "--set", help="KEY=VALUE option (YAML value: lists and numbers work); repeatable."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace a source of the same name."),
) -> None:
    """Add a source after checking it against the real source (folder, table, columns, query).

    Credentials must be ${VAR} references; they are expanded from the environment of the
    process that syncs, never stored."""
    raw = load_definition(file, name, kind, options)
    try:
        view = run_admin(lambda rt, admin: sources.add_source(rt, admin, raw, replace=replace))
    except (ConnectorError, InvalidRequest) as exc:
        raise ConfigError(f"source refused: {exc}") from None
    console.print(
        f"[green]added source {view['name']}[/] ({view['kind']}); "
        f"ingest it with `kb sync {view['name']}`"
    )


@app.command("list")
@handle_errors
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List sources with their document counts and last run."""
    found = run_admin(sources.list_sources)
    if as_json:
        console.print_json(json.dumps(found))
        return
    table = Table(
        "name",
        "kind",
        "origin",
        "enabled",
        "schedule",
        "watch",
        "documents",
        "failing",
        "last run",
        "last success",
        "last change",
        "lag",
    )
    for s in found:
        last = s["last_run"]
        fresh = s.get("freshness") or {}
        table.add_row(
            s["name"],
            s["kind"],
            s["origin"] if s["in_config_file"] or s["origin"] != "config" else "config (gone)",
            "yes" if s["enabled"] else "no",
            s["schedule"] or "-",
            str(s["documents"]),
            str(s.get("failing", 0)),
            f"{last['id']} {last['status']}" if last else "-",
            (s["last_success_at"] or "never")[:19],
            (fresh.get("last_change_at") or "-")[:19],
            _lag(fresh),
        )
    console.print(table if found else "no sources; add one with `kb sources add`")


def _lag(fresh: dict[str, Any]) -> str:
    """Change-to-searchable time of the last change, and who watches the source."""
    lag = fresh.get("lag_seconds")
    shown = f"{lag:.1f} s" if isinstance(lag, int | float) else "-"
    watcher = fresh.get("watcher")
    return f"{shown} (watched by {watcher})" if watcher else shown


@app.command()
@handle_errors
def show(
    name: str = typer.Argument(..., help="Source name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a source: its stored configuration (no secrets), cursor and recent runs."""
    view = run_admin(lambda rt, admin: sources.get_source(rt, admin, name))
    if as_json:
        console.print_json(json.dumps(view))
        return
    last = view["last_success_at"] or "never"
    console.print(
        f"[bold]{view['name']}[/] ({view['kind']}, from {view['origin']}), "
        f"{view['documents']} documents, last success {last}"
    )
    console.print(yaml.safe_dump(view["config"], sort_keys=False).rstrip(), highlight=False)
    for run in view["recent_runs"]:
        console.print(
            f"  run {run['id']} {run['status']} {(run['started_at'] or '')[:19]}: "
            + counts_line(run)
        )
    if view.get("failing_count"):
        title = f"{view['failing_count']} failing documents"
        table = Table("document", "failing since", "reason", title=title)
        for f in view["failing"]:
            table.add_row(f["external_id"], str(f.get("since") or "")[:19], f["reason"])
        console.print(table)
    if view.get("truncated_count"):
        table = Table("document", "why", title=f"{view['truncated_count']} stored truncated")
        for t in view["truncated"]:
            table.add_row(t["external_id"], t["reason"])
        console.print(table)


@app.command()
@handle_errors
def remove(
    name: str = typer.Argument(..., help="Source name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove a source added with `kb sources add`, with all its documents and chunks."""
    confirm_destructive(yes, f"remove source {name!r} and everything ingested from it?")
    run_admin(lambda rt, admin: sources.remove_source(rt, admin, name))
    console.print(f"removed source {name}")
