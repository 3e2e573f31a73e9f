"""``kb mcp``: the same MCP server over stdio, for desktop hosts that start it themselves.

There is no token on stdio, so the caller is fixed for the whole process and taken from the
command line (``--as user:alice --group group:eng``) or from ``stdio.principals`` in the
configuration. Without one the command refuses to start rather than guess an identity.

A line that is not JSON gets a JSON-RPC parse error (-32700), and JSON that is not a
JSON-RPC message an invalid-request error (-32600), both with ``id: null``: the SDK's
stdio reader hands such lines to the server as exceptions, which it only logs, so the
host waited for an answer that never came (:func:`answer_malformed_lines`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

from core.errors import ConfigError
from core.identity import Caller, is_principal
from server.db.engine import DatabaseTarget
from server.mcp.background_model import BackgroundModel
from server.mcp.server import build_mcp_server
from server.mcp.state import McpState
from server.runtime import open_runtime
from server.settings import Settings

log = logging.getLogger(__name__)

SUBJECT_PREFIXES = ("user:", "svc:", "email:")


def stdio_caller(principals: Sequence[str]) -> Caller:
    """The stdio caller: the first principal is the subject (a user, service or e-mail)."""
    cleaned = [p.strip() for p in principals if p.strip()]
    if not cleaned:
        raise ConfigError(
            "kb mcp needs to know whom it acts for: pass --as user:NAME (and --group group:NAME "
            "for each group), or set stdio.principals in the configuration"
        )
    bad = [p for p in cleaned if not is_principal(p)]
    if bad:
        raise ConfigError(
            f"not a principal: {', '.join(bad)} (write user:NAME, group:NAME, email:ADDRESS, "
            "svc:NAME or role:NAME)"
        )
    if not cleaned[0].startswith(SUBJECT_PREFIXES):
        raise ConfigError(
            f"the first principal ({cleaned[0]}) must name the user: user:NAME, email:ADDRESS "
            "or svc:NAME"
        )
    return Caller.of(*dict.fromkeys(cleaned), transport="stdio")


async def serve_stdio(
    settings: Settings, caller: Caller, *, target: DatabaseTarget | None = None
) -> None:
    """Open the runtime, then serve MCP on stdin/stdout until the host closes it."""
    model = BackgroundModel(settings.embedding)
    async with open_runtime(settings, target=target, embedder=model) as runtime:

        @asynccontextmanager
        async def lifespan(_: MCPServer[McpState]) -> AsyncIterator[McpState]:
            yield McpState.of_runtime(runtime, fixed_caller=caller)

        server = build_mcp_server(settings, lifespan).lowlevel
        async with stdio_server() as (read_stream, write_stream):
            checked, checked_reader = anyio.create_memory_object_stream[SessionMessage | Exception](
                0
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(answer_malformed_lines, read_stream, checked, write_stream)
                await server.run(
                    checked_reader, write_stream, server.create_initialization_options()
                )
                tg.cancel_scope.cancel()


def malformed_line_error(exc: Exception) -> JSONRPCError:
    """The JSON-RPC error for a line the SDK could not read as a message."""
    not_json = isinstance(exc, ValidationError) and any(
        e.get("type") == "json_invalid" for e in exc.errors()
    )
    if not_json:
        error = ErrorData(code=PARSE_ERROR, message="Parse error: the line is not valid JSON")
    else:
        error = ErrorData(code=INVALID_REQUEST, message="Invalid request: not a JSON-RPC message")
    return JSONRPCError(jsonrpc="2.0", id=None, error=error)


async def answer_malformed_lines(
    incoming: ObjectReceiveStream[SessionMessage | Exception],
    to_server: ObjectSendStream[SessionMessage | Exception],
    to_client: ObjectSendStream[SessionMessage],
) -> None:
    """Forward messages to the server; answer unreadable lines on the spot."""
    async with to_server:
        async for item in incoming:
            if isinstance(item, Exception):
                log.info("answered an unreadable stdio line: %s", item.__class__.__name__)
                await to_client.send(SessionMessage(malformed_line_error(item)))
                continue
            await to_server.send(item)


__all__ = ["answer_malformed_lines", "malformed_line_error", "serve_stdio", "stdio_caller"]
