"""The tools: ``search``, ``fetch`` and ``list_sources``.

Names, descriptions and the on/off switch of each tool come from ``mcp.tools`` in the
configuration; limits (``top_k_max``, snippet and fetch sizes) from ``mcp``. All three are
read-only. Failures the model can fix (an empty query, a bad date, an unknown id) come back
as ``isError`` results with a message saying what to change.
"""

# No `from __future__ import annotations` here: the tool signatures carry limits from the
# settings inside `Annotated[...]`, which must be evaluated when the functions are defined.

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from core.errors import KBError
from server.mcp.calls import tool_error
from server.mcp.schemas import (
    CHUNK_ID_PREFIX,
    FetchOutput,
    SearchFiltersInput,
    SearchOutput,
    SearchResultItem,
    SourceInfo,
    SourcesOutput,
    fetch_of_chunk,
    fetch_of_document,
)
from server.mcp.state import McpState, state_of
from server.search.schemas import SearchFilters, SearchQuery
from server.search.validation import make_filters
from server.settings import McpSettings
from server.usecases import reading

SEARCH_DESCRIPTION = (
    "Search the organisation's knowledge base (keyword and semantic search combined) and get "
    "the passages that best match, from documents you are allowed to read. Use it before "
    "answering questions about internal policies, procedures, products, customers or data. "
    "Each result has an `id` (pass it to {fetch} for the whole document), a `title`, a `url` "
    "in the source system, a `uri` (kb://documents/...) to cite, the matching passage as "
    "`text`, and its source, collection and modification time. Narrow the search with "
    "`filters` (sources, collections, content_types, modified_after/modified_before as ISO "
    "dates, metadata equality); {list_sources} shows what exists. Try other wordings when "
    "nothing relevant comes back."
)
FETCH_DESCRIPTION = (
    "Fetch the full text and metadata of one document by the `id` a search result gave you "
    "(or its kb://documents/... URI). Pass a passage id instead (`chunk:123`, a search "
    "result's `chunk_id`) to get only that passage with `neighbours` passages before and "
    "after it. Documents longer than {limit} characters are cut (`truncated` is true)."
)
LIST_SOURCES_DESCRIPTION = (
    "List the sources (systems the knowledge base ingests) and their collections that you can "
    "read, with how many documents you may read in each. Use the names in {search} filters."
)


def _read_only(title: str) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )


def _filters(given: SearchFiltersInput | None) -> SearchFilters:
    if given is None:
        return SearchFilters()
    return make_filters(
        sources=given.sources,
        collections=given.collections,
        content_types=given.content_types,
        modified_after=given.modified_after,
        modified_before=given.modified_before,
        metadata=given.metadata,
    )


def tool_names(settings: McpSettings) -> dict[str, str | None]:
    """Built-in name -> announced name, or None when the tool is switched off."""
    names: dict[str, str | None] = {}
    for builtin in ("search", "fetch", "list_sources"):
        cfg = settings.tools.get(builtin)
        if cfg is None:
            names[builtin] = builtin
        else:
            names[builtin] = (cfg.name or builtin) if cfg.enabled else None
    return names


def register_tools(server: MCPServer[McpState], settings: McpSettings) -> None:
    names = tool_names(settings)
    said = {k: f"`{v or k}`" for k, v in names.items()}

    def description(builtin: str, default: str) -> str:
        cfg = settings.tools.get(builtin)
        return cfg.description if cfg is not None and cfg.description else default

    async def search(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=2000,
                description="What to look for, in natural language or keywords.",
            ),
        ],
        ctx: Context[McpState, Any],
        top_k: Annotated[
            int,
            Field(ge=1, le=settings.top_k_max, description="How many results to return."),
        ] = settings.top_k_default,
        filters: Annotated[
            SearchFiltersInput | None, Field(description="Optional narrowing; all must match.")
        ] = None,
        mode: Annotated[
            Literal["hybrid", "keyword", "semantic"] | None,
            Field(
                description="hybrid (default): meaning and words together, best for questions. "
                "keyword: exact words ranked by BM25; use it for error codes, ticket and part "
                "numbers, versions, names, config keys and file names (ERR-4031, pg_dump, "
                'v2.3.1). semantic: meaning only, for paraphrases. Any mode accepts "exact '
                'phrase" and -excluded words.'
            ),
        ] = None,
    ) -> SearchOutput:
        state = state_of(ctx)
        name = names["search"]
        arguments: dict[str, Any] = {"query": query, "top_k": top_k}
        if mode is not None:
            arguments["mode"] = mode
        if filters is not None:
            arguments["filters"] = filters.model_dump(exclude_none=True)
        await ctx.report_progress(0, 2, "searching")
        try:
            result = await reading.search(
                state,
                state.caller(),
                SearchQuery(text=query, top_k=top_k, filters=_filters(filters), mode=mode),
                target=name or "search",
                arguments=arguments,
            )
        except KBError as exc:
            raise tool_error(exc) from None
        await ctx.report_progress(2, 2, f"{len(result.hits)} results")
        return SearchOutput(results=[SearchResultItem.of(h) for h in result.hits])

    async def fetch(
        id: Annotated[
            str,
            Field(
                min_length=1,
                max_length=300,
                description="A document id (or kb://documents/... URI), or a passage id chunk:N.",
            ),
        ],
        ctx: Context[McpState, Any],
        neighbours: Annotated[
            int,
            Field(ge=0, le=5, description="For a passage id: passages to add on each side."),
        ] = 1,
    ) -> FetchOutput:
        state = state_of(ctx)
        ref = id.strip()
        recorded = {"id": ref, "neighbours": neighbours}
        target = names["fetch"] or "fetch"
        try:
            if ref.startswith(CHUNK_ID_PREFIX):
                chunk = await reading.fetch_chunk(
                    state,
                    state.caller(),
                    ref.removeprefix(CHUNK_ID_PREFIX),
                    neighbours,
                    target=target,
                    arguments=recorded,
                )
                return fetch_of_chunk(chunk)
            doc = await reading.fetch_document(
                state, state.caller(), ref, target=target, arguments=recorded
            )
            return fetch_of_document(doc)
        except KBError as exc:
            raise tool_error(exc) from None

    async def list_sources(ctx: Context[McpState, Any]) -> SourcesOutput:
        state = state_of(ctx)
        try:
            sources = await reading.list_sources(
                state, state.caller(), target=names["list_sources"] or "list_sources"
            )
        except KBError as exc:
            raise tool_error(exc) from None
        return SourcesOutput(sources=[SourceInfo.of(s) for s in sources])

    builtins: dict[str, tuple[Callable[..., Any], str, str]] = {
        "search": (search, "Search the knowledge base", SEARCH_DESCRIPTION),
        "fetch": (fetch, "Fetch a document", FETCH_DESCRIPTION),
        "list_sources": (list_sources, "List sources and collections", LIST_SOURCES_DESCRIPTION),
    }
    for builtin, (fn, title, template) in builtins.items():
        announced = names[builtin]
        if announced is None:
            continue
        text = template.format(
            fetch=said["fetch"],
            list_sources=said["list_sources"],
            search=said["search"],
            limit=settings.fetch_max_chars,
        )
        server.add_tool(
            fn,
            name=announced,
            title=title,
            description=description(builtin, text),
            annotations=_read_only(title),
            structured_output=True,
        )


__all__ = ["register_tools", "tool_names"]
