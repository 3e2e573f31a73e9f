"""Argument completion for the document template, the source template and the prompts.

Document ids complete from what the caller may read, matching the typed prefix against
titles and ids; source names from the caller's visible sources. Anything else gets an empty
(but well-formed) completion.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp_types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    PromptReference,
    ResourceTemplateReference,
)

from core.errors import KBError
from server.mcp.calls import guarded, protocol_error
from server.mcp.resources import DOCUMENT_TEMPLATE, SOURCE_TEMPLATE
from server.mcp.state import state_of

MAX_VALUES = 100  # the protocol's cap per completion
_DOCUMENT_ARGS = {
    ("ref/prompt", "summarize_document", "id"),
    ("ref/prompt", "compare_documents", "a"),
    ("ref/prompt", "compare_documents", "b"),
    ("ref/resource", DOCUMENT_TEMPLATE, "id"),
}
_SOURCE_ARGS = {("ref/resource", SOURCE_TEMPLATE, "source")}


def _key(params: CompleteRequestParams) -> tuple[str, str, str]:
    ref = params.ref
    if isinstance(ref, PromptReference):
        return ("ref/prompt", ref.name, params.argument.name)
    assert isinstance(ref, ResourceTemplateReference)
    return ("ref/resource", ref.uri, params.argument.name)


async def complete(
    ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams
) -> CompleteResult:
    key = _key(params)
    prefix = params.argument.value
    if key not in _DOCUMENT_ARGS and key not in _SOURCE_ARGS:
        return CompleteResult(completion=Completion(values=[], total=0, has_more=False))
    state = state_of(ctx)
    try:
        async with guarded(
            state,
            method="completion/complete",
            target=f"{key[1]}:{key[2]}",
            arguments={"value": prefix},
        ) as call:
            if key in _DOCUMENT_ARGS:
                docs = await state.search.complete_documents(call.access, prefix, MAX_VALUES)
                values = [str(d.document_id) for d in docs]
            else:
                sources = await state.search.list_sources(call.access)
                low = prefix.lower()
                values = [s.source for s in sources if s.source.lower().startswith(low)]
    except KBError as exc:
        raise protocol_error(exc) from None
    # A full page may hide more matches: say so, so the client keeps narrowing.
    return CompleteResult(
        completion=Completion(
            values=values[:MAX_VALUES], total=None, has_more=len(values) >= MAX_VALUES
        )
    )


__all__ = ["complete"]
