"""First start: ingest the configured sources that were never synced.

Used by `kb serve` when ``ingest.sync_on_start`` is ``missing`` (or with
``--load-examples``). The first start syncs each enabled source of the configuration that
has never completed a sync, inline and with progress. Later starts find every source synced
and return after one query, so they take seconds.
"""

from __future__ import annotations

from sqlalchemy import Engine

from server.cli.common import console
from server.cli.sync_cmd import sync_inline
from server.db.engine import DatabaseTarget, make_sync_engine
from server.embeddings import Embedder
from server.ingest import repository
from server.ingest.sources import upsert_configured_sources
from server.settings import Settings


def never_synced(settings: Settings, engine: Engine) -> list[str]:
    """Enabled configured sources without a completed sync, in configuration order."""
    with engine.begin() as conn:
        upsert_configured_sources(conn, settings)
        rows = {row.name: row for row in repository.list_sources(conn)}
    return [
        s.name
        for s in settings.sources
        if s.enabled and (s.name not in rows or rows[s.name].last_success_at is None)
    ]


def sync_never_synced(
    settings: Settings, target: DatabaseTarget, embedder: Embedder | None = None
) -> list[str]:
    """Sync, inline, every enabled configured source that never completed a sync.

    ``embedder``: the model the caller already loaded, so a process loads it once.
    """
    engine = make_sync_engine(target, settings)
    try:
        pending = never_synced(settings, engine)
        if not pending:
            console.print("every configured source has been synced before")
            return []
        console.print(f"first start: ingesting {len(pending)} source(s): {', '.join(pending)}")
        for name in pending:
            sync_inline(settings, engine, name, embedder=embedder)
        return pending
    finally:
        engine.dispose()


__all__ = ["never_synced", "sync_never_synced"]
