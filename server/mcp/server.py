"""Build the MCP server from ``settings.mcp`` on the official SDK (``mcp`` 2.x).

``MCPServer`` provides tool schemas from typed signatures, prompts and the protocol
machinery (both the 2026-07-28 stateless era and the 2025 handshake era); the handlers that
must know the caller (the resource list, resource reads, completion) and the prompt gate
replace its defaults on the low-level server. One server serves stdio and Streamable HTTP;
the transport only decides where the :class:`McpState` lifespan comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from mcp.server.caching import CacheableMethod, CacheHint
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    CallToolRequestParams,
    CompleteRequestParams,
    GetPromptRequestParams,
    PaginatedRequestParams,
    ReadResourceRequestParams,
)

from server import __version__
from server.mcp.arguments import ArgumentGate
from server.mcp.completion import complete
from server.mcp.prompts import PromptGate, register_prompts
from server.mcp.resources import Resources
from server.mcp.state import McpState
from server.mcp.tools import register_tools, tool_names
from server.observability.mcp_metrics import McpMetricsMiddleware
from server.settings import Settings

DEFAULT_INSTRUCTIONS = (
    "This server searches the organisation's knowledge base: documents and records from its "
    "internal systems, limited to what the signed-in user may read. Search before answering "
    "questions about internal matters, read the best results in full when the passage is not "
    "enough, and cite the kb:// URI of every document you rely on."
)

# Lists that are the same for every caller may be shared; per-caller ones never.
CACHE_HINTS: dict[CacheableMethod, CacheHint] = {
    "tools/list": CacheHint(ttl_ms=60_000, scope="public"),
    "prompts/list": CacheHint(ttl_ms=60_000, scope="public"),
    "resources/templates/list": CacheHint(ttl_ms=60_000, scope="public"),
    "resources/list": CacheHint(ttl_ms=0, scope="private"),
    "resources/read": CacheHint(ttl_ms=0, scope="private"),
}

Lifespan = Callable[[MCPServer[McpState]], AbstractAsyncContextManager[McpState]]


class KbMcpServer(MCPServer[McpState]):
    """``MCPServer`` with access to its low-level server, to replace per-caller handlers."""

    @property
    def lowlevel(self) -> Server[McpState]:
        # The SDK keeps this attribute private (its own Client reaches it the same way).
        server: Server[McpState] = self._lowlevel_server
        return server


def build_mcp_server(settings: Settings, lifespan: Lifespan) -> KbMcpServer:
    """The configured server; ``lifespan`` yields the :class:`McpState` handlers use."""
    cfg = settings.mcp
    server = KbMcpServer(
        name=cfg.name,
        title="Knowledge base",
        instructions=cfg.instructions or DEFAULT_INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        cache_hints=CACHE_HINTS,
        log_level=settings.log_level,
    )
    register_tools(server, cfg)
    if cfg.prompts_enabled:
        register_prompts(server, cfg)
    low = server.lowlevel
    tools_call = low.get_request_handler("tools/call")
    assert tools_call is not None
    low.add_request_handler(
        "tools/call", CallToolRequestParams, ArgumentGate(server, tools_call.handler).call
    )
    prompts_get = low.get_request_handler("prompts/get")
    if prompts_get is not None:
        gate = PromptGate(server, prompts_get.handler)
        low.add_request_handler("prompts/get", GetPromptRequestParams, gate.get)
    if cfg.resources_enabled:
        install_resources(server)
    low.add_request_handler("completion/complete", CompleteRequestParams, complete)
    # Requests by method and tool with their latency (labels clamped to what is registered).
    tools = frozenset(n for n in tool_names(cfg).values() if n)
    low.middleware.append(McpMetricsMiddleware(lambda m: _handles(low, m), tools.__contains__))
    return server


def _handles(low: Server[McpState], method: str) -> bool:
    return low.get_request_handler(method) is not None or (
        low.get_notification_handler(method) is not None
    )


def install_resources(server: KbMcpServer) -> None:
    low = server.lowlevel
    read = low.get_request_handler("resources/read")
    assert read is not None
    resources = Resources(server, read.handler)
    low.add_request_handler("resources/list", PaginatedRequestParams, resources.list_resources)
    low.add_request_handler(
        "resources/templates/list", PaginatedRequestParams, resources.list_templates
    )
    low.add_request_handler("resources/read", ReadResourceRequestParams, resources.read)


__all__ = ["CACHE_HINTS", "DEFAULT_INSTRUCTIONS", "KbMcpServer", "build_mcp_server"]
