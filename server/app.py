"""The application factory: ``create_app(settings)`` builds everything in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from server import __version__
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.http import admin_audit, admin_keys, admin_policies, admin_sources, health, metadata
from server.http.auth_gate import AdminAuthGate
from server.http.console import PREFIX as CONSOLE_PREFIX
from server.http.console import router as console_router
from server.http.console import static_files as console_static
from server.http.errors import install_error_handlers
from server.http.hosts import PROBE_PATHS, TrustedHostMiddleware
from server.http.limits import BodyLimitMiddleware
from server.http.metrics import METRICS_PATH, install_metrics, observe_runtime
from server.http.validation_errors import validation_error
from server.mcp.http import McpMount, security_settings
from server.observability.request_id import RequestIdMiddleware
from server.runtime import open_runtime
from server.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    target: DatabaseTarget | None = None,
    run_migrations: bool = True,
    embedder: Embedder | None = None,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the HTTP application. Nothing is created until the lifespan starts.

    ``on_ready`` is called once the lifespan has opened everything (a worker of
    ``kb serve --workers`` tells its parent it is serving).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(
                open_runtime(
                    settings, target=target, run_migrations=run_migrations, embedder=embedder
                )
            )
            app.state.runtime = runtime
            observe_runtime(app, runtime)  # /metrics: SQL stage timing, database figures
            # The MCP session manager runs inside the app's lifespan, after the runtime.
            await stack.enter_async_context(mcp.run(runtime))
            log.info("kb ready on %s", settings.http.base_url)
            if on_ready is not None:
                on_ready()
            yield

    app = FastAPI(
        title="kb — enterprise knowledge-base MCP server",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(metadata.router)
    app.include_router(admin_keys.router)
    app.include_router(admin_audit.router)
    app.include_router(admin_sources.router)
    app.include_router(admin_policies.router)
    # The admin console: pages over the same use cases, its own cookie sessions.
    app.include_router(console_router)
    app.mount(f"{CONSOLE_PREFIX}/static", console_static(), name="console-static")
    install_metrics(app, settings.metrics)
    # The error tree maps to HTTP statuses once; /admin routes audit in their use cases.
    install_error_handlers(app)
    # Invalid input is answered 422 even when it holds characters UTF-8 cannot encode.
    app.add_exception_handler(RequestValidationError, validation_error)
    mcp = McpMount(app, settings)
    # Listed innermost first (Starlette wraps each added middleware around the previous).
    # Bodies are counted and timed as they stream: 413/408 without buffering them.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.http.max_request_bytes,
        import_max_bytes=settings.http.max_import_bytes,
        body_timeout_s=settings.http.body_timeout_s,
    )
    # /admin callers are authenticated from their headers before any body is read.
    app.add_middleware(AdminAuthGate, exempt=(CONSOLE_PREFIX,))
    # Host and Origin checked for the whole app, as the SDK checks them on /mcp.
    security = security_settings(settings.http)
    app.add_middleware(
        TrustedHostMiddleware,
        allowed_hosts=security.allowed_hosts,
        allowed_origins=security.allowed_origins,
        # Prometheus scrapes by address (pod or container IP) like the probes' callers.
        exempt_paths=PROBE_PATHS | {METRICS_PATH},
    )
    # Outermost: every request (refused ones too) gets its id before anything logs.
    app.add_middleware(RequestIdMiddleware)
    return app


__all__ = ["create_app"]
