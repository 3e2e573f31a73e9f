"""Prompts: ``answer_with_citations``, ``summarize_document`` and ``compare_documents``.

The document prompts embed the documents (read with the caller's own access filter) so the
model works from the text; a document the caller may not read is "not found", as anywhere
else. ``prompts/get`` is wrapped so an unknown prompt or a missing argument is "invalid
params" (the SDK alone would answer with an internal error).
"""

# No `from __future__ import annotations`: pydantic reads the prompt signatures at runtime.

from typing import Annotated, Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    EmbeddedResource,
    GetPromptRequestParams,
    GetPromptResult,
    InputRequiredResult,
    TextResourceContents,
)
from pydantic import Field

from core.errors import KBError
from server.mcp.calls import guarded, protocol_error
from server.mcp.state import McpState, state_of
from server.mcp.tools import tool_names
from server.search.schemas import DocumentView
from server.settings import McpSettings
from server.usecases import reading

DocumentId = Annotated[
    str,
    Field(description="A document id or kb://documents/... URI (search results carry them)."),
]
PROMPT_NAMES = ("answer_with_citations", "summarize_document", "compare_documents")


def _embedded(view: DocumentView) -> UserMessage:
    s = view.summary
    note = " (truncated)" if view.truncated else ""
    return UserMessage(
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri=s.uri, mime_type="text/plain", text=f"# {s.title}{note}\n\n{view.text}"
            ),
        )
    )


async def _read(ctx: Context[McpState, Any], prompt: str, ids: list[str]) -> list[DocumentView]:
    state = state_of(ctx)
    try:
        async with guarded(
            state, method="prompts/get", target=prompt, arguments={"ids": ids}
        ) as call:
            views = [await state.search.fetch_document(call.access, i) for i in ids]
            call.record.documents(v.summary.document_id for v in views)
    except KBError as exc:
        raise protocol_error(exc) from None
    return views


def register_prompts(server: MCPServer[McpState], settings: McpSettings) -> None:
    names = tool_names(settings)
    search = names["search"] or "search"
    fetch = names["fetch"]

    async def answer_with_citations(
        question: Annotated[str, Field(description="The question to answer.")],
        ctx: Context[McpState, Any],
    ) -> list[UserMessage]:
        state = state_of(ctx)
        try:
            async with guarded(
                state,
                method="prompts/get",
                target="answer_with_citations",
                arguments={"question": question},
            ):
                pass
        except KBError as exc:
            raise protocol_error(exc) from None
        read = (
            f" Then call `{fetch}` on the most relevant results to read them in full."
            if fetch
            else " Work from the passages the search returns."
        )
        return [
            UserMessage(
                f"Answer the question below from the organisation's knowledge base. First call "
                f"the `{search}` tool (try more than one wording; use its filters when the "
                f"question names a source, team or time period).{read} Answer only from what "
                f"you found. Cite every statement with the kb:// URI of the document it comes "
                f"from, in square brackets, e.g. [kb://documents/<id>]. If the knowledge base "
                f"does not answer the question, say so plainly instead of guessing.\n\n"
                f"Question: {question}"
            )
        ]

    async def summarize_document(id: DocumentId, ctx: Context[McpState, Any]) -> list[UserMessage]:
        (view,) = await _read(ctx, "summarize_document", [id])
        return [
            _embedded(view),
            UserMessage(
                f"Summarise the document above ({view.summary.title!r}) for a colleague: its "
                f"purpose, the key points and any decisions, dates, numbers or obligations it "
                f"contains. Keep it short and cite it as [{view.summary.uri}]."
            ),
        ]

    async def compare_documents(
        a: DocumentId, b: DocumentId, ctx: Context[McpState, Any]
    ) -> list[UserMessage]:
        first, second = await _read(ctx, "compare_documents", [a, b])
        return [
            _embedded(first),
            _embedded(second),
            UserMessage(
                f"Compare the two documents above ({first.summary.title!r} and "
                f"{second.summary.title!r}): what they agree on, where they differ or "
                f"contradict each other, and what one covers that the other does not. Cite "
                f"each point as [{first.summary.uri}] or [{second.summary.uri}]."
            ),
        ]

    server.prompt(
        name="answer_with_citations",
        title="Answer with citations",
        description="Answer a question from the knowledge base, citing kb:// document URIs.",
    )(answer_with_citations)
    server.prompt(
        name="summarize_document",
        title="Summarise a document",
        description="Summarise one knowledge-base document (its text is embedded).",
    )(summarize_document)
    server.prompt(
        name="compare_documents",
        title="Compare two documents",
        description="Compare two knowledge-base documents (both texts are embedded).",
    )(compare_documents)


class PromptGate:
    """Wraps ``prompts/get``: an unknown prompt, a missing or unknown argument, and text
    that cannot be stored (NUL, unpaired surrogates) are invalid params, and recorded."""

    def __init__(self, server: MCPServer[McpState], inner: Any) -> None:
        self._server = server
        self._inner = inner

    async def get(
        self, ctx: ServerRequestContext[Any, Any], params: GetPromptRequestParams
    ) -> GetPromptResult | InputRequiredResult:
        known = {p.name: p for p in await self._server.list_prompts()}
        prompt = known.get(params.name)
        if prompt is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
        given = params.arguments or {}
        declared = {a.name for a in prompt.arguments or []}
        problems = [
            f"missing required argument {a.name}"
            for a in prompt.arguments or []
            if a.required and a.name not in given
        ]
        # The SDK would fail on an unknown argument with an internal error (-32603).
        problems += [f"unknown argument {name}" for name in sorted(set(given) - declared)]
        # Text no document id, question or audit row can hold: refuse it as bad input
        # rather than letting it fail deeper as "temporarily unavailable".
        problems += [
            f"argument {name} contains a NUL character or an unpaired surrogate"
            for name, value in sorted(given.items())
            if isinstance(value, str) and not _storable(value)
        ]
        if problems:
            await _audit_rejected(ctx, params.name, problems)
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Invalid arguments for {params.name}: {'; '.join(problems)}",
            )
        try:
            result: GetPromptResult | InputRequiredResult = await self._inner(ctx, params)
        except MCPError:
            raise
        except Exception as exc:
            # The SDK wraps rendering failures in ValueError; their text stays in the log.
            raise MCPError(code=INTERNAL_ERROR, message=f"Prompt {params.name} failed") from exc
        return result


def _storable(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _audit_rejected(
    ctx: ServerRequestContext[Any, Any], prompt: str, problems: list[str]
) -> None:
    state = ctx.lifespan_context
    if not isinstance(state, McpState):
        return
    try:
        await reading.record_rejected(
            state, state.caller(), method="prompts/get", target=prompt, problems=problems
        )
    except KBError as exc:
        raise protocol_error(exc) from None


__all__ = ["PROMPT_NAMES", "PromptGate", "register_prompts"]
