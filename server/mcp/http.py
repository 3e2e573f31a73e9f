"""Streamable HTTP at ``/mcp`` inside the FastAPI app.

``McpMount`` is created by ``create_app`` (it only registers the route and the MCP server's
handlers); ``McpMount.run(runtime)``, entered by the app's lifespan once the runtime is open,
starts the SDK's session manager and builds the request pipeline, outermost first:

1. CORS for browser clients (origins from ``http.allowed_origins``; the ``Mcp-*`` headers
   are allowed and exposed);
2. bearer authentication: the SDK's middleware with our token verifier, so handlers get
   the caller from ``get_access_token()``; 401/403 name the RFC 9728 metadata URL (the
   metadata itself is served at the host root by :mod:`server.http.metadata`);
3. the intake (:mod:`server.mcp.intake`): malformed request ids refused, and calls
   doing work shed with 503 + Retry-After past ``http.max_concurrent_calls``;
4. the session manager, which enforces the body limit (413 beyond
   ``http.max_request_bytes``) and DNS-rebinding protection (Host and Origin checked
   against ``http.allowed_hosts`` / ``http.allowed_origins``) before any JSON-RPC.

The whole app also checks Host/Origin (:mod:`server.http.hosts`) and streams every body
through the byte and time limits of :mod:`server.http.limits`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.mcp_verifier import KbTokenVerifier
from server.mcp.intake import McpIntake
from server.mcp.server import KbMcpServer, build_mcp_server
from server.mcp.state import McpState
from server.runtime import Runtime
from server.settings import HttpSettings, Settings

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MCP_HEADERS = ["Mcp-Session-Id", "Mcp-Protocol-Version"]
EXPOSED_HEADERS = [*MCP_HEADERS, "WWW-Authenticate"]


def security_settings(http: HttpSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection from the settings; the public URL's host is always allowed."""
    hosts = list(http.allowed_hosts)
    origins = list(http.allowed_origins)
    if http.public_url:
        public = urlsplit(http.public_url)
        if public.netloc and public.netloc not in hosts:
            hosts.append(public.netloc)
        origin = f"{public.scheme}://{public.netloc}"
        if public.netloc and origin not in origins:
            origins.append(origin)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def cors_origins(origins: list[str]) -> tuple[list[str], str | None]:
    """Exact origins, and one regex for the ``scheme://host:*`` (any port) patterns."""
    exact = [o for o in origins if not o.endswith(":*")]
    patterns = [re.escape(o[:-2]) + r":\d+" for o in origins if o.endswith(":*")]
    return exact, ("|".join(patterns) or None)


def with_cors(app: ASGIApp, security: TransportSecuritySettings) -> ASGIApp:
    exact, regex = cors_origins(security.allowed_origins)
    return CORSMiddleware(
        app,
        allow_origins=exact,
        allow_origin_regex=regex,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        # Clients send Mcp-Method / Mcp-Name / Mcp-Param-* headers too: mirror what is asked.
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )


def with_auth(app: ASGIApp, runtime: Runtime) -> ASGIApp:
    """The SDK's bearer pipeline around ``app``, verifying tokens with our authenticator."""
    settings = runtime.settings
    required = RequireAuthMiddleware(
        app,
        required_scopes=list(settings.auth.required_scopes),
        resource_metadata_url=AnyHttpUrl(runtime.auth.metadata_url),
    )
    # The audience (this server's resource URI) is checked by the verifier itself.
    backend = BearerAuthBackend(KbTokenVerifier(runtime.auth))
    return AuthenticationMiddleware(AuthContextMiddleware(required), backend=backend)


class McpMount:
    """The ``/mcp`` endpoint of one app. ``run`` must be active for it to answer."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.settings = settings
        self._runtime: Runtime | None = None
        self._pipeline: ASGIApp | None = None

        @asynccontextmanager
        async def lifespan(_: MCPServer[McpState]) -> AsyncIterator[McpState]:
            if self._runtime is None:
                raise RuntimeError("the MCP server started before the runtime was opened")
            yield McpState.of_runtime(self._runtime)

        self.server: KbMcpServer = build_mcp_server(settings, lifespan)
        app.router.routes.append(Route(MCP_PATH, endpoint=self, include_in_schema=False))
        app.state.mcp = self

    @asynccontextmanager
    async def run(self, runtime: Runtime) -> AsyncIterator[None]:
        """Start the session manager (a new one per run: the SDK allows one run each)."""
        security = security_settings(self.settings.http)
        manager = StreamableHTTPSessionManager(
            app=self.server.lowlevel,
            security_settings=security,
            max_request_body_size=self.settings.http.max_request_bytes,
            # Sessions live in this process's memory: with several replicas they need
            # sticky routing, or none at all (stateless; see docs/scaling.md).
            stateless=self.settings.mcp.stateless_http,
        )
        http = self.settings.http
        self.intake = McpIntake(
            manager.handle_request,
            limit=http.max_concurrent_calls,
            retry_after_s=http.retry_after_s,
        )
        pipeline: ASGIApp = self.intake
        if self.settings.auth.mode != "none":
            pipeline = with_auth(pipeline, runtime)
        pipeline = with_cors(pipeline, security)
        self._runtime = runtime
        async with manager.run():
            self._pipeline = pipeline
            try:
                yield
            finally:
                self._pipeline = None
                self._runtime = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline = self._pipeline
        if pipeline is None:
            response = JSONResponse({"error": "the MCP endpoint is not running"}, status_code=503)
            await response(scope, receive, send)
            return
        await pipeline(scope, receive, send)


__all__ = ["MCP_PATH", "McpMount", "cors_origins", "security_settings"]
