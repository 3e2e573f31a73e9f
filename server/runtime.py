"""The process-wide resources, built once and handed to every door (HTTP, MCP, CLI).

``open_runtime`` does the blocking parts (starting or joining the embedded database,
checking pgvector, migrating, loading the model) on worker threads, so it can run inside
the FastAPI lifespan without stalling the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import InitVar, dataclass, field

from policies.engine import PolicyEngine
from policies.listener import open_policy_engine
from policies.store import CHANNEL as POLICY_CHANNEL
from policies.store import PolicyStore
from server.audit.recorder import AuditRecorder
from server.auth.service import Authenticator
from server.db import migrate
from server.db.engine import Database, DatabaseTarget, check_database, resolve_database
from server.db.replicas import ReadRouter, open_read_router
from server.embeddings import AsyncEmbedder, Embedder, load_embedder
from server.search.source_counts import NoGeneration, SourceCounts, follow_documents
from server.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    target: DatabaseTarget
    db: Database
    embedder: AsyncEmbedder | None
    pgvector_version: str
    started: dict[str, bool] = field(default_factory=dict)
    # The access-policy snapshot; open_runtime loads it and keeps it current (LISTEN).
    policies: PolicyEngine = field(default_factory=PolicyEngine.empty)
    # Where search, fetch and listings read: read replicas when configured and current
    # (server/db/replicas.py), else the primary. open_runtime passes it; default: primary.
    read_router: InitVar[ReadRouter | None] = None
    reads: ReadRouter = field(init=False)
    # list_sources answers per caller, dropped on every documents write any process makes
    # (server/search/source_counts.py); open_runtime follows the writes, default: no cache.
    source_counts: SourceCounts = field(default_factory=lambda: SourceCounts(NoGeneration()))
    # Built from settings and db in __post_init__, so every Runtime has them.
    auth: Authenticator = field(init=False)
    audit: AuditRecorder = field(init=False)
    policy_store: PolicyStore = field(init=False)

    def __post_init__(self, read_router: ReadRouter | None) -> None:
        self.reads = read_router or ReadRouter(self.db)
        self.auth = Authenticator(self.settings, self.db)
        self.audit = AuditRecorder(self.db, self.settings.audit)
        self.policy_store = PolicyStore(
            self.db, configured_sources(self.settings), audit=self.audit
        )

    def require_embedder(self) -> AsyncEmbedder:
        if self.embedder is None:
            raise RuntimeError("this runtime was opened without the embedding model")
        return self.embedder


def configured_sources(settings: Settings) -> dict[str, bool]:
    """Name -> enabled for the configuration file's sources (disabled ones are not served)."""
    return {s.name: s.enabled for s in settings.sources}


def prepare_database(
    settings: Settings,
    target: DatabaseTarget | None = None,
    *,
    run_migrations: bool = False,
    check_schema: bool = True,
) -> tuple[DatabaseTarget, str]:
    """Blocking: resolve the database, check pgvector, then migrate to head or check the schema.

    Migrating is explicit (`kb serve`, `kb db upgrade`); by default a schema at another
    revision is refused with :class:`~core.errors.SchemaMismatch`. ``check_schema=False`` is
    for `kb db` itself, which inspects or moves the revision.
    """
    target = target or resolve_database(settings)
    try:
        version = check_database(target, settings)
        if run_migrations:
            migrate.upgrade(target.url)
        elif check_schema:
            migrate.require_current(target.url)
    except BaseException:
        target.close()
        raise
    return target, version


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    target: DatabaseTarget | None = None,
    load_model: bool = True,
    run_migrations: bool = False,
    embedder: Embedder | None = None,
    watch_policies: bool = True,
) -> AsyncIterator[Runtime]:
    """Open every shared resource; pass ``embedder`` to reuse an already loaded model.

    ``watch_policies=False`` (one-shot CLI commands) loads the policy once, without the
    LISTEN connection that keeps long-running processes current.
    """
    owns_target = target is None
    resolved, version = await asyncio.to_thread(
        prepare_database, settings, target, run_migrations=run_migrations
    )
    async_embedder: AsyncEmbedder | None = None
    db = Database.open(resolved, settings)
    try:
        if embedder is not None:
            async_embedder = AsyncEmbedder.configured(embedder, settings.embedding)
        elif load_model:
            loaded = await asyncio.to_thread(load_embedder, settings.embedding)
            async_embedder = AsyncEmbedder.configured(loaded, settings.embedding)
        policy_file = settings.resolve(settings.policy_file) if settings.policy_file else None
        async with (
            open_policy_engine(
                PolicyStore(
                    db, configured_sources(settings), audit=AuditRecorder(db, settings.audit)
                ),
                resolved.dsn,
                admin_principals=settings.auth.admin_principals,
                policy_file=policy_file,
                watch=watch_policies,
                poll_interval=settings.policy.poll_interval_s,
                max_age=settings.policy.max_age_s,
            ) as policies,
            open_read_router(settings, resolved, db, [POLICY_CHANNEL]) as reads,
            follow_documents(resolved.dsn, reads.barrier, watch=watch_policies) as documents,
        ):
            yield Runtime(
                settings,
                resolved,
                db,
                async_embedder,
                version,
                policies=policies,
                read_router=reads,
                source_counts=SourceCounts(documents),
            )
    finally:
        if async_embedder is not None:
            async_embedder.close()
        await db.dispose()
        if owns_target:
            await asyncio.to_thread(resolved.close)


__all__ = ["Runtime", "open_runtime", "prepare_database"]
