"""MCP requests by method and tool, with their latency: one SDK middleware.

Installed on the low-level server's context-tier middleware list (it wraps every inbound
request, whatever the transport), it times the call and classifies it: ``ok``,
``tool_error`` (a tool answered ``isError``, e.g. nothing found or a bad argument),
``invalid`` (parameters failed validation) or ``error`` (a JSON-RPC error). Method and
tool names are clamped to what this server registered, so a client cannot create label
values (and time series) at will.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult
from pydantic import ValidationError

from server.observability.metrics import observe_mcp

log = logging.getLogger(__name__)

OTHER: Final = "other"
NO_TOOL: Final = ""
# Protocol methods the SDK answers itself (not in the server's handler table).
SPEC_METHODS: Final = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
    }
)


class McpMetricsMiddleware:
    """Times and counts every MCP request; ``known_method``/``known_tool`` bound labels."""

    def __init__(
        self, known_method: Callable[[str], bool], known_tool: Callable[[str], bool]
    ) -> None:
        self._known_method = known_method
        self._known_tool = known_tool

    def _labels(self, ctx: ServerRequestContext[Any, Any]) -> tuple[str, str]:
        known = ctx.method in SPEC_METHODS or self._known_method(ctx.method)
        method = ctx.method if known else OTHER
        tool = NO_TOOL
        if ctx.method == "tools/call":
            name = ctx.params.get("name") if ctx.params else None
            tool = name if isinstance(name, str) and self._known_tool(name) else OTHER
        return method, tool

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call_next(ctx)
            match result:
                case CallToolResult(is_error=True) | {"isError": True}:
                    outcome = "tool_error"
                case _:
                    outcome = "ok"
            return result
        except ValidationError:
            outcome = "invalid"
            raise
        finally:
            elapsed = time.perf_counter() - started
            method, tool = self._labels(ctx)
            observe_mcp(method, tool, outcome, elapsed)
            log.info("mcp %s %s %s %.1f ms", method, tool or "-", outcome, elapsed * 1000)


__all__ = ["McpMetricsMiddleware"]
