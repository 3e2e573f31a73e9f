"""Run a procrastinate worker for kb jobs in this process (``kb worker``).

The model loads once per worker process and is shared by its concurrent jobs (the
embedder serialises inference); the sync engine is shared the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from sqlalchemy import Engine

from server.db.engine import DatabaseTarget, make_sync_engine
from server.embeddings import Embedder, load_embedder
from server.ingest import repository
from server.ingest.sources import parse_config
from server.jobs.app import make_job_app
from server.jobs.tasks import RESOURCES, WorkerResources
from server.settings import Settings

log = logging.getLogger(__name__)


def source_schedules(settings: Settings, engine: Engine) -> dict[str, str]:
    """Cron schedules of enabled sources: the configuration file's, then the stored ones."""
    schedules = {s.name: s.schedule for s in settings.sources if s.enabled and s.schedule}
    configured = {s.name for s in settings.sources}
    with engine.connect() as conn:
        rows = repository.list_sources(conn)
    for row in rows:
        if row.name in configured or row.origin == "config" or not row.enabled:
            continue
        schedule = parse_config(row.config).schedule
        if schedule:
            schedules[row.name] = schedule
    return schedules


async def run_worker(
    settings: Settings,
    target: DatabaseTarget,
    *,
    concurrency: int | None = None,
    embedder: Embedder | None = None,
    wait: bool = True,
    install_signal_handlers: bool = True,
) -> None:
    """Process jobs until stopped (SIGINT/SIGTERM), or until the queue is empty if not ``wait``."""
    concurrency = concurrency or settings.ingest.worker_concurrency
    if embedder is None:
        embedder = await asyncio.to_thread(load_embedder, settings.embedding)
    engine = make_sync_engine(target, settings)
    try:
        schedules = await asyncio.to_thread(source_schedules, settings, engine)
        app = make_job_app(target, schedules=schedules, pool_size=concurrency + 3)
        name = f"kb-worker@{socket.gethostname()}:{os.getpid()}"
        log.info(
            "worker %s: concurrency %d, %d scheduled sources", name, concurrency, len(schedules)
        )
        async with app.open_async():
            await app.run_worker_async(
                name=name,
                concurrency=concurrency,
                wait=wait,
                install_signal_handlers=install_signal_handlers,
                additional_context={RESOURCES: WorkerResources(settings, engine, embedder)},
            )
    finally:
        await asyncio.to_thread(engine.dispose)


__all__ = ["run_worker", "source_schedules"]
