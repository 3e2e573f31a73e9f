"""`kb search`: search the knowledge base exactly as a given user would over MCP."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import typer
from rich.table import Table

from core.errors import InvalidRequest
from core.identity import Caller, is_principal
from server.cli.common import State, console, handle_errors, run_async
from server.search import SearchQuery, SearchResult, SearchService, make_filters
from server.settings import Settings
from server.usecases.admin import cli_operator


def _principal(value: str, prefix: str) -> str:
    """``alice`` -> ``user:alice``; an already prefixed name is kept as given."""
    value = value.strip()
    name = value if is_principal(value) else f"{prefix}{value}"
    if not is_principal(name):
        raise InvalidRequest(f"not a principal name: {value!r}")
    return name


def make_caller(settings: Settings, as_: str | None, groups: list[str]) -> Caller:
    """The caller from --as/--group, else the stdio identity from the configuration."""
    if as_ is None:
        if not settings.stdio.principals:
            raise InvalidRequest(
                "say who is searching: --as user:alice (or set stdio.principals in kb.yaml)"
            )
        principals = [*settings.stdio.principals, *(_principal(g, "group:") for g in groups)]
    else:
        principals = [_principal(as_, "user:"), *(_principal(g, "group:") for g in groups)]
    # Who ran the command is the client; who is searching is the --as principal.
    client = cli_operator().subject
    return Caller.of(*dict.fromkeys(principals), transport="cli", client_id=client)


async def _search(
    caller: Caller, query: SearchQuery, settings: Settings
) -> tuple[SearchResult, int]:
    """The same read use case as the MCP search tool: audited whatever the outcome."""
    from server.runtime import open_runtime
    from server.usecases import reading

    async with open_runtime(settings, watch_policies=False) as runtime:
        readers = reading.Readers(
            search=SearchService(runtime.reads, runtime.require_embedder(), settings),
            policies=runtime.policies,
            audit=runtime.audit,
        )
        arguments: dict[str, Any] = {"query": query.text, "top_k": query.top_k}
        if query.mode is not None:
            arguments["mode"] = query.mode
        result = await reading.search(
            readers, caller, query, method="search", target="kb search", arguments=arguments
        )
        return result, runtime.policies.version


def _as_json(result: SearchResult, version: int) -> str:
    def plain(value: Any) -> Any:
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    hits = [asdict(h) for h in result.hits]
    return json.dumps(
        {"query": result.query, "policy_version": version, "hits": hits},
        default=plain,
        ensure_ascii=False,
        indent=2,
    )


def _table(result: SearchResult, caller: Caller) -> Table:
    who = ", ".join(sorted(caller.principals))
    table = Table(
        title=f"{len(result.hits)} result(s) for {result.query!r} as {who}", show_lines=True
    )
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("title / uri", overflow="fold")
    table.add_column("source / collection")
    table.add_column("snippet", overflow="fold", ratio=3)
    for rank, hit in enumerate(result.hits, start=1):
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            f"[bold]{hit.title}[/]\n[dim]{hit.uri}[/]",
            f"{hit.source}\n{hit.collection}",
            hit.snippet.replace("[", "\\["),
        )
    return table


@handle_errors
def search(
    query: str = typer.Argument(..., help="What to look for (plain words or a question)."),
    as_: str | None = typer.Option(
        None, "--as", help="Search as this principal (user:alice, or just alice)."
    ),
    group: list[str] = typer.Option(
        [], "--group", "-g", help="A group the caller belongs to (repeatable): group:eng or eng."
    ),
    top_k: int | None = typer.Option(None, "--top-k", "-k", help="Number of results."),
    source: list[str] = typer.Option([], "--source", "-s", help="Only this source (repeatable)."),
    collection: list[str] = typer.Option(
        [], "--collection", help="Only this collection and its children (repeatable)."
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        "-m",
        help="hybrid (default), keyword (exact codes, names, identifiers; BM25) or semantic.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Search as a given user would: only what their policies let them read."""
    settings = State.settings()
    caller = make_caller(settings, as_, group)
    filters = make_filters(sources=source, collections=collection)
    q = SearchQuery(query, top_k or settings.mcp.top_k_default, filters, mode=mode)
    result, version = run_async(_search(caller, q, settings))
    if as_json:
        typer.echo(_as_json(result, version))
    else:
        console.print(_table(result, caller))


__all__ = ["make_caller", "search"]
