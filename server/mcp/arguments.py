"""Checks ``tools/call`` arguments against each tool's input schema before the tool runs.

``MCPServer`` would answer a bad argument with pydantic's multi-line report (and a link to
pydantic's website); a model acts better on one line per problem ("top_k: 500 is greater
than the maximum of 50"). An unknown tool is a protocol error (invalid params), as the
specification asks, rather than a tool result. Rejected calls are audited like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    TextContent,
)

from core.errors import DatabaseUnavailable
from server.mcp.calls import protocol_error
from server.mcp.state import McpState
from server.usecases import reading

log = logging.getLogger(__name__)

MAX_PROBLEMS = 5
MAX_MESSAGE_CHARS = 200


def problems(validator: Draft202012Validator, arguments: Mapping[str, Any]) -> list[str]:
    """Readable problems, ``path: message`` each, shortest paths first."""
    found = sorted(validator.iter_errors(dict(arguments)), key=lambda e: (len(e.path), e.message))
    out: list[str] = []
    for error in found[:MAX_PROBLEMS]:
        where = ".".join(str(p) for p in error.absolute_path)
        message = error.message
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        out.append(f"{where}: {message}" if where else message)
    return out


class ArgumentGate:
    """Wraps the ``tools/call`` handler of an ``MCPServer``."""

    def __init__(self, server: MCPServer[McpState], inner: Any) -> None:
        self._server = server
        self._inner = inner
        self._validators: dict[str, Draft202012Validator] | None = None

    async def _validator(self, name: str) -> Draft202012Validator | None:
        # Schemas are compiled once; an unknown name re-reads the list (tools may be added).
        if self._validators is None or name not in self._validators:
            tools = await self._server.list_tools()
            self._validators = {t.name: Draft202012Validator(t.input_schema) for t in tools}
        return self._validators.get(name)

    async def call(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        validator = await self._validator(params.name)
        if validator is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        found = problems(validator, params.arguments or {})
        if not found:
            result: CallToolResult | InputRequiredResult = await self._inner(ctx, params)
            return result
        await _audit_rejected(ctx, params, found)
        text = f"Invalid arguments for {params.name}: " + "; ".join(found)
        return CallToolResult(
            content=[TextContent(type="text", text=text + ". Correct them and call again.")],
            is_error=True,
        )


async def _audit_rejected(
    ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams, found: list[str]
) -> None:
    """A rejected call is recorded like any other call, through the same read path."""
    state = ctx.lifespan_context
    if not isinstance(state, McpState):
        return
    try:
        await reading.record_rejected(
            state, state.caller(), method="tools/call", target=params.name, problems=found
        )
    except DatabaseUnavailable as exc:
        raise protocol_error(exc) from None


__all__ = ["ArgumentGate", "problems"]
