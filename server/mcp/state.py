"""What every MCP handler reaches through the server's lifespan context.

The HTTP mount builds an :class:`McpState` from the application's runtime (the caller comes
from the verified bearer token of each request); ``kb mcp`` builds one with a fixed caller
taken from the configuration (stdio has no token). Handlers never see the runtime itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context

from core.errors import AuthError
from core.identity import Caller
from policies.access import AccessFilter
from server.audit.recorder import AuditRecorder
from server.auth.mcp_verifier import current_mcp_caller
from server.auth.service import ANONYMOUS
from server.runtime import Runtime
from server.search.service import SearchService
from server.settings import Settings


class PolicySource(Protocol):
    """The policy engine as the MCP layer uses it (``runtime.policies``)."""

    def filter_for(self, caller: Caller) -> AccessFilter | Awaitable[AccessFilter]: ...


@dataclass(frozen=True)
class McpState:
    settings: Settings
    search: SearchService
    policies: PolicySource
    audit: AuditRecorder
    # Only for stdio and in-process use: HTTP callers always come from their token.
    fixed_caller: Caller | None = None

    @classmethod
    def of_runtime(cls, runtime: Runtime, *, fixed_caller: Caller | None = None) -> McpState:
        return cls(
            settings=runtime.settings,
            search=SearchService(
                runtime.reads,
                runtime.require_embedder(),
                runtime.settings,
                source_counts=runtime.source_counts,
            ),
            policies=runtime.policies,
            audit=runtime.audit,
            fixed_caller=fixed_caller,
        )

    def caller(self) -> Caller:
        """Who is calling: the verified token's caller, else the configured fixed caller.

        Fails closed: without a token and without a fixed caller only ``auth.mode: none``
        yields a caller, the anonymous one (which the policy engine lets see nothing).
        """
        from_token = current_mcp_caller()
        if from_token is not None:
            return from_token
        if self.fixed_caller is not None:
            return self.fixed_caller
        if self.settings.auth.mode == "none":
            return Caller.of(ANONYMOUS, transport="http")
        raise AuthError("authentication required")

    async def access_for(self, caller: Caller) -> AccessFilter:
        made = self.policies.filter_for(caller)
        return await made if inspect.isawaitable(made) else made


def state_of(ctx: Context[Any, Any] | ServerRequestContext[Any, Any]) -> McpState:
    """The :class:`McpState` from a high-level ``Context`` or a low-level request context."""
    request_ctx = ctx.request_context if isinstance(ctx, Context) else ctx
    state = request_ctx.lifespan_context
    if not isinstance(state, McpState):
        raise RuntimeError("the MCP server was started without its McpState lifespan")
    return state


__all__ = ["McpState", "PolicySource", "state_of"]
