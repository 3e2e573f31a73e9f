"""``GET /metrics``: Prometheus text format, outside the MCP and admin auth paths.

What it shows: the in-process metrics of :mod:`server.observability.metrics` (summed over
every process sharing ``PROMETHEUS_MULTIPROC_DIR`` when set) and the scrape-time figures
of :mod:`server.observability.collectors` (policy, pool, queue, corpus, ingestion).

Access: open by default, like ``/healthz`` (and like the probes, exempt from the Host check:
Prometheus scrapes replicas by address): the figures hold counts, durations and source
names, never document text, queries or principals. ``metrics.bearer_token`` makes it
require ``Authorization: Bearer <token>`` (compared in constant time; 401 otherwise);
``metrics.enabled: false`` removes the route (404).
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.pool import QueuePool

from server import __version__
from server.observability import repository
from server.observability.collectors import CachedStats, PolicyFigures, ServerCollector
from server.observability.metrics import exposition
from server.observability.sql_timing import time_statements
from server.runtime import Runtime
from server.settings import MetricsSettings

router = APIRouter(tags=["health"])
METRICS_PATH = "/metrics"


def install_metrics(app: FastAPI, settings: MetricsSettings) -> None:
    """Add ``/metrics`` to ``app`` unless switched off."""
    if settings.enabled:
        app.include_router(router)


def observe_runtime(app: FastAPI, runtime: Runtime) -> None:
    """Called by the lifespan once the runtime is open: time its SQL for the search stages
    and read its database figures for scrapes."""
    time_statements()  # every engine: the primary's and the read replicas'

    async def read() -> repository.DatabaseStats:
        async with runtime.db.sessions() as session, session.begin():
            return await repository.read_stats(session)

    app.state.metrics_stats = CachedStats(read, runtime.settings.metrics.database_interval_s)


def _authorized(request: Request, settings: MetricsSettings) -> bool:
    if settings.bearer_token is None:
        return True
    expected = f"Bearer {settings.bearer_token.get_secret_value()}".encode()
    given = request.headers.get("authorization", "").encode("utf-8", "replace")
    return hmac.compare_digest(given, expected)


@router.get(METRICS_PATH, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings.metrics
    if not _authorized(request, settings):
        return JSONResponse(
            {"error": "a bearer token is required for /metrics"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    cached: CachedStats | None = getattr(request.app.state, "metrics_stats", None)
    stats = await cached.refresh() if cached is not None else None
    policies = runtime.policies
    pool = runtime.db.engine.pool
    collector = ServerCollector(
        policies=PolicyFigures(
            version=policies.version,
            age_s=policies.age,
            max_age_s=policies.max_age,
            uncompilable_rules=len(policies.snapshot.problems),
            reloads=policies.reloads,
        ),
        pool=pool if isinstance(pool, QueuePool) else None,  # a NullPool has no figures
        stats=stats,
        read_seconds=cached.read_seconds if cached is not None else 0.0,
        version=__version__,
    )
    # Rendering walks every series (and, multi-process, reads files): off the event loop.
    body = await asyncio.to_thread(exposition, collector)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


__all__ = ["METRICS_PATH", "install_metrics", "observe_runtime", "router"]
