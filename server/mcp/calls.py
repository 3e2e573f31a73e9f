"""The one path every MCP call takes: identify, authorize, run, audit, answer safely.

``guarded`` resolves the caller and hands it to the application layer's read path
(:func:`server.usecases.reading.authorized_read`: access filter, then one audit row with
the outcome the domain error implies). The
``*_error`` helpers turn a domain error into what the client sees, once, so no handler
forms its own message: denied and missing read the same (the services already say
"not found" for both), and nothing internal (SQL, paths, stack traces) leaves the server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST

from core.errors import (
    AccessDenied,
    AuthError,
    DatabaseError,
    InvalidRequest,
    KBError,
    NotFound,
    PolicyError,
)
from server.mcp.state import McpState
from server.usecases.reading import Read, authorized_read

log = logging.getLogger(__name__)

UNAVAILABLE = "the knowledge base is temporarily unavailable; try again in a moment"
POLICY_FAILED = (
    "your access rules could not be evaluated, so nothing was returned; ask an administrator"
)
NOT_ALLOWED = "you are not allowed to do this"
FAILED = "the request failed on the server; try again, or ask an administrator if it persists"
RESOURCE_NOT_FOUND = "Resource not found"


# One authorized call in progress (the application layer's read).
Call = Read


@asynccontextmanager
async def guarded(
    state: McpState,
    *,
    method: str,
    target: str | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> AsyncIterator[Read]:
    """The MCP caller through the application layer's read path: access filter -> the
    body -> one audit row (written even on failure). See :mod:`server.usecases.reading`."""
    async with authorized_read(
        state, state.caller(), method=method, target=target, arguments=arguments
    ) as read:
        yield read


def public_message(exc: KBError) -> str:
    """What a client may read about a domain error."""
    if isinstance(exc, NotFound | InvalidRequest):
        return exc.message
    if isinstance(exc, AuthError | AccessDenied):
        return NOT_ALLOWED
    if isinstance(exc, DatabaseError):
        return UNAVAILABLE
    if isinstance(exc, PolicyError):
        return POLICY_FAILED
    # Other errors (configuration, connectors) may name files or hosts: keep them in the log.
    log.error("MCP call failed: %s: %s", exc.__class__.__name__, exc.message)
    return FAILED


def tool_error(exc: KBError) -> ToolError:
    """A tool failure the model can act on (sent as an ``isError`` result)."""
    return ToolError(public_message(exc))


def protocol_error(exc: KBError, *, uri: str | None = None) -> MCPError:
    """A JSON-RPC error for resources, prompts and completion."""
    if isinstance(exc, NotFound):
        if uri is not None:
            return resource_not_found(uri)
        return MCPError(code=INVALID_PARAMS, message=exc.message)
    if isinstance(exc, InvalidRequest):
        return MCPError(code=INVALID_PARAMS, message=exc.message)
    if isinstance(exc, AuthError | AccessDenied):
        return MCPError(code=INVALID_REQUEST, message=NOT_ALLOWED)
    return MCPError(code=INTERNAL_ERROR, message=public_message(exc))


def resource_not_found(uri: str) -> MCPError:
    """The single answer for a resource that is missing, denied or unknown (SEP-2164)."""
    return MCPError(code=INVALID_PARAMS, message=RESOURCE_NOT_FOUND, data={"uri": uri})


__all__ = [
    "Call",
    "guarded",
    "protocol_error",
    "public_message",
    "resource_not_found",
    "tool_error",
]
