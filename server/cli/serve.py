"""`kb serve`: the HTTP server (admin REST and MCP over Streamable HTTP)."""

from __future__ import annotations

import logging

import typer
import uvicorn

from server.app import create_app
from server.cli.bootstrap import sync_never_synced
from server.cli.common import State, configure_logging, console, handle_errors
from server.db.engine import describe
from server.db.home_lock import HomeLock
from server.embeddings import load_embedder
from server.runtime import prepare_database

log = logging.getLogger(__name__)


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
) -> None:
    """Start the server: database, migrations, model, then HTTP on host:port (MCP at /mcp)."""
    settings = State.settings()
    if host or port:
        http = settings.http.model_copy(
            update={k: v for k, v in {"host": host, "port": port}.items() if v}
        )
        settings = settings.model_copy(update={"http": http})
    configure_logging(settings.log_level)
    with HomeLock(settings.home_dir):
        with console.status("starting the database"):
            target, version = prepare_database(settings, run_migrations=migrate)
        try:
            console.print(f"database {describe(target.url)} (pgvector {version}) ready")
            # Loaded once here and shared by the first-start sync and the server.
            with console.status("loading the embedding model"):
                embedder = load_embedder(settings.embedding)
            if load_examples or settings.ingest.sync_on_start == "missing":
                sync_never_synced(settings, target, embedder)
            app = create_app(settings, target=target, run_migrations=False, embedder=embedder)
            console.print(
                f"[bold green]serving[/] {settings.http.base_url}  "
                f"(MCP {settings.http.base_url}/mcp, docs {settings.http.base_url}/docs)"
            )
            uvicorn.run(
                app,
                host=settings.http.host,
                port=settings.http.port,
                log_level=settings.log_level.lower(),
                proxy_headers=True,
            )
        finally:
            target.close()
