"""``kb mcp``: the same MCP server over stdio, for desktop hosts that start it themselves.

There is no token on stdio, so the caller is fixed for the whole process and taken from the
command line (``--as user:alice --group group:eng``) or from ``stdio.principals`` in the
configuration. Without one the command refuses to start rather than guess an identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer

from core.errors import ConfigError
from core.identity import Caller, is_principal
from server.db.engine import DatabaseTarget
from server.mcp.background_model import BackgroundModel
from server.mcp.server import build_mcp_server
from server.mcp.state import McpState
from server.runtime import open_runtime
from server.settings import Settings

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

        await build_mcp_server(settings, lifespan).run_stdio_async()


__all__ = ["serve_stdio", "stdio_caller"]
