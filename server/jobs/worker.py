"""Run a procrastinate worker for kb jobs in this process (``kb worker``).

The model loads once per worker process and is shared by its concurrent jobs (the
embedder serialises inference); the sync engine is shared the same way.

:func:`run_worker_until_stopped` keeps a worker alive across database outages: when the
database goes away (restart, failover, the embedded server killed) procrastinate's loops
fail and its worker stops; ours is then rebuilt on fresh connections after a backoff (1 s
doubling to ``max_backoff_s``) and resumes, instead of exiting for good. Jobs it had in progress are
requeued by the stalled-job task (their heartbeats stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time

import psycopg
from procrastinate.exceptions import ConnectorException
from psycopg_pool import PoolTimeout
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from core.errors import DatabaseUnavailable
from server.db.engine import DatabaseTarget, make_sync_engine
from server.embeddings import Embedder, load_embedder
from server.ingest import repository
from server.ingest.sources import parse_config
from server.jobs.app import make_job_app
from server.jobs.tasks import RESOURCES, WorkerResources
from server.jobs.watch import WatchSet, watched_sources
from server.settings import Settings

log = logging.getLogger(__name__)

WATCH_STOP_S = 30.0  # a stopping worker waits this long for a watched sync to finish


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
        # Watchers only for a worker that keeps running (not one draining the queue).
        watched = await asyncio.to_thread(watched_sources, settings, engine) if wait else []
        log.info(
            "worker %s: concurrency %d, %d scheduled sources, %d watched",
            name,
            concurrency,
            len(schedules),
            len(watched),
        )
        stop_watching = asyncio.Event()
        watching: asyncio.Task[None] | None = None
        if watched:
            watch = WatchSet(settings, target, engine, embedder, name, watched)
            watching = asyncio.create_task(watch.run(stop_watching), name="kb-watchers")
        try:
            async with app.open_async():
                await app.run_worker_async(
                    name=name,
                    concurrency=concurrency,
                    wait=wait,
                    install_signal_handlers=install_signal_handlers,
                    additional_context={RESOURCES: WorkerResources(settings, engine, embedder)},
                )
        finally:
            if watching is not None:
                await _stop_watchers(stop_watching, watching)
    finally:
        await asyncio.to_thread(engine.dispose)


async def _stop_watchers(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Let a watched sync in progress finish (it commits or not as a whole), then stop."""
    stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(task), WATCH_STOP_S)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    except Exception:
        log.warning("a watcher failed while stopping", exc_info=True)


# What a lost database looks like from procrastinate, psycopg, its pool and SQLAlchemy.
DATABASE_LOST: tuple[type[BaseException], ...] = (
    ConnectorException,
    psycopg.OperationalError,
    PoolTimeout,
    DBAPIError,
    DatabaseUnavailable,
)


async def run_worker_until_stopped(
    settings: Settings,
    target: DatabaseTarget,
    *,
    concurrency: int | None = None,
    embedder: Embedder | None = None,
    first_backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
) -> None:
    """Run the worker until SIGINT/SIGTERM, rebuilding it with backoff when the DB is lost.

    The signals are ours, not procrastinate's: when its listener or another side task
    fails (the database went away) its worker stops and returns normally, exactly as after
    a signal, so only our own flag tells the two apart. A signal cancels the running worker,
    which procrastinate turns into a graceful stop (running jobs get to finish).
    """
    if embedder is None:
        embedder = await asyncio.to_thread(load_embedder, settings.embedding)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    current: asyncio.Task[None] | None = None

    def on_signal() -> None:
        stop.set()
        if current is not None:
            current.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    delay = first_backoff_s
    try:
        while not stop.is_set():
            started = time.monotonic()
            current = asyncio.create_task(
                run_worker(
                    settings,
                    target,
                    concurrency=concurrency,
                    embedder=embedder,
                    install_signal_handlers=False,
                )
            )
            reason = "its database connection failed"
            try:
                await current
            except asyncio.CancelledError:
                if stop.is_set():
                    return
                raise
            except DATABASE_LOST as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__
            if stop.is_set():
                return
            if time.monotonic() - started > 10 * max_backoff_s:
                delay = first_backoff_s  # it had been running fine: a new outage
            log.warning("worker stopped (%s); reconnecting in %.0f s", reason, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(max_backoff_s, delay * 2)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


__all__ = ["DATABASE_LOST", "run_worker", "run_worker_until_stopped", "source_schedules"]
