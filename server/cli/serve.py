"""`kb serve`: the HTTP server (admin REST and MCP over Streamable HTTP).

Stopping: SIGTERM (systemd, Docker, Kubernetes) and SIGINT stop accepting connections,
give in-flight requests ``http.shutdown_grace_s`` to finish, run the app's shutdown (MCP
sessions, database pool, policy listener) and then release the embedded PostgreSQL. uvicorn
re-raises the signal after its own shutdown, which with the default handlers would kill the
process before the ``finally`` below runs; :func:`_serve_until_signalled` gives it a handler
that lets the function return instead.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Literal

import typer
import uvicorn

from core.errors import ConfigError
from server.app import create_app
from server.cli.bootstrap import sync_never_synced
from server.cli.common import State, configure_logging, console, handle_errors
from server.cli.db_watch import EmbeddedWatchdog
from server.cli.serve_workers import (
    WorkerPool,
    WorkerSpec,
    shared_metrics_dir,
    workers_problem,
)
from server.cli.signals import STOP_SIGNALS, stop_signals_unwind
from server.db.engine import DatabaseTarget, describe, pool_shortfall
from server.db.home_lock import HomeLock
from server.embeddings import load_embedder
from server.http.bind import check_bind
from server.http.listen import PortGroup, reserve
from server.http.protocol import uvicorn_config
from server.observability.logs import uvicorn_log_options
from server.ops.tls import TLSFiles, tls_files
from server.runtime import prepare_database
from server.settings import Settings

log = logging.getLogger(__name__)


def _already_handled(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal it shut down for: it has been handled.
    log.info("%s handled: the server has shut down", signal.Signals(signum).name)


def _serve_until_signalled(server: uvicorn.Server) -> None:
    """Run uvicorn; return normally after a SIGTERM/SIGINT shutdown."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _already_handled)
    server.run()
    if server.should_exit:
        log.info("kb serve stopped")


def _print_serving(settings: Settings) -> None:
    workers = settings.http.workers
    processes = f", {workers} worker processes" if workers > 1 else ""
    console.print(
        f"[bold green]serving[/] {settings.http.base_url}  "
        f"(MCP {settings.http.base_url}/mcp, docs {settings.http.base_url}/docs{processes})"
    )


def _serve_workers(
    settings: Settings,
    target: DatabaseTarget,
    group: PortGroup,
    log_format: Literal["text", "json"],
    tls: TLSFiles | None,
) -> None:
    """``http.workers`` processes on the port, supervised until a stop signal."""
    spec = WorkerSpec(settings, target.url, log_format, tls)
    with shared_metrics_dir(settings.home_dir):
        pool = WorkerPool(spec, group, settings.http.workers)
        pool.serve(on_ready=lambda: _print_serving(settings))
    log.info("kb serve stopped")


@handle_errors
def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default from config)."),
    port: int | None = typer.Option(None, help="Port to bind (default from config)."),
    migrate: bool = typer.Option(True, help="Apply pending migrations before serving."),
    load_examples: bool = typer.Option(
        False,
        help=(
            "Sync configured sources that were never synced before serving (as "
            "ingest.sync_on_start: missing). Later starts skip them and take seconds."
        ),
    ),
    allow_insecure_bind: bool = typer.Option(
        False,
        "--allow-insecure-bind",
        help=(
            "Allow auth.mode dev or none on a non-loopback address (refused otherwise; "
            "as auth.allow_insecure_bind)."
        ),
    ),
    ssl_certfile: Path | None = typer.Option(
        None, help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile."
    ),
    ssl_keyfile: Path | None = typer.Option(None, help="The certificate's PEM private key."),
    workers: int | None = typer.Option(
        None,
        min=1,
        max=64,
        help="Server processes sharing the port (default from config: http.workers).",
    ),
) -> None:
    """Start the server: database, migrations, model, then HTTP on host:port (MCP at /mcp)."""
    settings = State.settings()
    tls = tls_files(ssl_certfile, ssl_keyfile)
    overrides = {"host": host, "port": port, "workers": workers}
    if any(overrides.values()):
        http = settings.http.model_copy(update={k: v for k, v in overrides.items() if v})
        settings = settings.model_copy(update={"http": http})
    if problem := workers_problem(settings):
        raise ConfigError(problem)
    # Several workers: a port someone already listens on is refused before anything starts.
    group = reserve(settings.http.host, settings.http.port) if settings.http.workers > 1 else None
    if tls and not settings.http.public_url:
        # Advertised URLs (OAuth metadata, the token audience) must name the scheme served.
        public = f"https://{settings.http.host}:{settings.http.port}"
        settings = settings.model_copy(
            update={"http": settings.http.model_copy(update={"public_url": public})}
        )
    log_format = configure_logging(settings.log_level, settings.logging.format)
    check_bind(settings, allow_insecure=allow_insecure_bind)
    if shortfall := pool_shortfall(settings):
        log.warning(shortfall)
    with stop_signals_unwind(), HomeLock(settings.home_dir):
        with console.status("starting the database"):
            target, version = prepare_database(settings, run_migrations=migrate)
        try:
            console.print(f"database {describe(target.url)} (pgvector {version}) ready")
            sync_first = load_examples or settings.ingest.sync_on_start == "missing"
            if group is not None:
                if sync_first:
                    # The workers load their own (query) model; this one only syncs.
                    with console.status("loading the embedding model"):
                        for_sync = load_embedder(settings.embedding)
                    sync_never_synced(settings, target, for_sync)
                    del for_sync
                with EmbeddedWatchdog(target):
                    _serve_workers(settings, target, group, log_format, tls)
                return
            # Loaded once here and shared by the first-start sync and the server.
            with console.status("loading the embedding model"):
                embedder = load_embedder(settings.embedding)
            if sync_first:
                sync_never_synced(settings, target, embedder)
            app = create_app(settings, target=target, run_migrations=False, embedder=embedder)
            _print_serving(settings)
            with EmbeddedWatchdog(target):
                options = {
                    **uvicorn_log_options(log_format),
                    **(tls.uvicorn_options() if tls else {}),
                }
                config = uvicorn_config(app, settings, **options)
                _serve_until_signalled(uvicorn.Server(config))
        finally:
            target.close()
            log.info("database handle released")
