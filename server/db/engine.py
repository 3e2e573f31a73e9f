"""Engines and the connection handle every part of the server shares.

One async SQLAlchemy engine (psycopg 3 driver, pooled) per process; sync work (Alembic,
connectors) uses a sync engine on the same URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.errors import DatabaseUnavailable, PgvectorMissing
from server.db.embedded import EmbeddedPostgres
from server.db.liveness import watch_liveness
from server.db.revocations import announce_document_writes
from server.settings import Settings

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 8)


def to_sqlalchemy_url(raw: str) -> URL:
    """Accept libpq-style URLs (postgres://, postgresql://) and pin the psycopg 3 driver."""
    url = make_url(raw.replace("postgres://", "postgresql://", 1))
    if url.get_backend_name() != "postgresql":
        raise DatabaseUnavailable(f"DATABASE_URL must be a PostgreSQL URL, got {url.drivername!r}")
    return url.set(drivername="postgresql+psycopg")


def to_libpq_dsn(url: URL) -> str:
    """The same URL for plain psycopg (procrastinate, LISTEN/NOTIFY)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def describe(url: URL) -> str:
    """A URL fit for messages and logs: no password."""
    return url.render_as_string(hide_password=True)


# Created by migration 0004_runtime_role: may only SELECT and INSERT on audit_log.
RUNTIME_ROLE = "kb_runtime"


def as_runtime_role(url: URL) -> URL:
    """The same connection acting as :data:`RUNTIME_ROLE` from its first statement.

    libpq's ``options`` set the ``role`` parameter at connection start, for every client
    that uses the URL (SQLAlchemy, procrastinate, the policy listener) and every pooled
    connection, with no statement to forget. The login must be the owner (a member since
    0004) or a login granted kb_runtime; see docs/operations.md for the two-login setup.
    """
    current = url.query.get("options", "")
    options = " ".join(current) if isinstance(current, tuple) else current
    # No space inside the option: URL renderers encode a space as "+", which libpq keeps.
    return url.update_query_dict({"options": f"{options} -crole={RUNTIME_ROLE}".strip()})


@dataclass
class DatabaseTarget:
    """Where the knowledge base lives; owns the embedded server if one was started.

    ``url`` is the login as given (it migrates); processes serve through ``runtime_url``.
    """

    url: URL
    embedded: EmbeddedPostgres | None = None

    @property
    def runtime_url(self) -> URL:
        return as_runtime_role(self.url)

    @property
    def dsn(self) -> str:
        """libpq DSN acting as the runtime role (procrastinate, LISTEN/NOTIFY)."""
        return to_libpq_dsn(self.runtime_url)

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def resolve_database(settings: Settings) -> DatabaseTarget:
    """Start (or join) the embedded server, or take DATABASE_URL. Blocking: call from sync code."""
    if settings.database.url is not None:
        return DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))
    embedded = EmbeddedPostgres(settings.home_dir, settings.database.embedded_database)
    return DatabaseTarget(to_sqlalchemy_url(embedded.start()), embedded)


def check_database(target: DatabaseTarget, settings: Settings) -> str:
    """Connect once and check pgvector; return its version. Raises a clear DatabaseError."""
    try:
        # As the login itself: before `kb db upgrade` the runtime role may not exist yet.
        with psycopg.connect(
            to_libpq_dsn(target.url),
            connect_timeout=max(1, int(settings.database.connect_timeout_s)),
        ) as conn:
            row = conn.execute(
                "SELECT COALESCE("
                " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
                " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))"
            ).fetchone()
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DatabaseUnavailable(
            f"cannot connect to the database at {describe(target.url)}: {first}"
        ) from None
    version = row[0] if row else None
    if version is None:
        raise PgvectorMissing(
            f"the database at {describe(target.url)} has no pgvector extension; "
            "install pgvector 0.8 or newer"
        )
    if parse_version(version) < MIN_PGVECTOR:
        raise PgvectorMissing(
            f"the database at {describe(target.url)} has pgvector {version}; "
            "0.8 or newer is required"
        )
    return str(version)


def parse_version(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _connect_args(settings: Settings, url: URL) -> dict[str, object]:
    args: dict[str, object] = {"connect_timeout": max(1, int(settings.database.connect_timeout_s))}
    # connect_args replace the URL's own ``options`` (the runtime role): merge, never drop.
    current = url.query.get("options", "")
    options = [" ".join(current) if isinstance(current, tuple) else current]
    if settings.database.statement_timeout_ms:
        options.append(f"-c statement_timeout={settings.database.statement_timeout_ms}")
    if joined := " ".join(o for o in options if o):
        args["options"] = joined
    return args


UNAVAILABLE = "the database is unavailable"


def _translate_connection_errors(context: ExceptionContext) -> None:
    """A lost or refused connection becomes :class:`DatabaseUnavailable`, once, here.

    Without this, psycopg's ``OperationalError`` (server killed, restarting, refusing
    connections) escapes every layer above as an unknown exception: MCP then answers only
    "Error executing tool". Pre-ping failures are left alone (the pool retries them), and
    SQLAlchemy still invalidates the dead connection after this hook.
    """
    if context.is_pre_ping:
        return
    original = context.original_exception
    if context.is_disconnect or isinstance(original, psycopg.OperationalError):
        if isinstance(original, psycopg.errors.QueryCanceled):
            return  # a statement timeout is the query's fault, not the database's
        first = str(original).strip().splitlines()[0] if str(original).strip() else ""
        log.warning("database unavailable: %s: %s", original.__class__.__name__, first)
        raise DatabaseUnavailable(UNAVAILABLE) from original


def pool_shortfall(settings: Settings) -> str | None:
    """Why the pool is too small for the MCP calls the server admits, or None.

    An admitted call holds at most one pooled connection at a time (a search runs both its
    legs and the hydration on one); the audit writer and the REST doors take a few more.
    Past ``pool_size`` the pool opens overflow connections and closes them again as soon
    as enough are idle, so a server loaded beyond it starts a database backend per call:
    31.7 instead of 49.8 searches/s at 16 clients (docs/benchmarks.md, Throughput).
    """
    wanted = settings.http.max_concurrent_calls + 2
    if settings.database.pool_size >= wanted:
        return None
    return (
        f"database.pool_size {settings.database.pool_size} is below "
        f"http.max_concurrent_calls + 2 ({wanted}): under full load the pool opens and "
        "closes a connection per call; raise database.pool_size (within the database's "
        "max_connections)"
    )


def make_async_engine(target: DatabaseTarget, settings: Settings) -> AsyncEngine:
    engine = make_async_engine_at(target.runtime_url, settings)
    announce_document_writes(engine.sync_engine)  # read replicas must hear of them
    return engine


def make_async_engine_at(url: URL, settings: Settings, application_name: str = "") -> AsyncEngine:
    """A pooled async engine on ``url`` (the primary's runtime URL, or a read replica's)."""
    connect_args = _connect_args(settings, url)
    if application_name:
        connect_args["application_name"] = application_name
    engine = create_async_engine(
        url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_pre_ping=False,  # watch_liveness pings only connections that may have died
        connect_args=connect_args,
    )
    watch_liveness(engine.sync_engine, ping_after_idle_s=settings.database.ping_after_idle_s)
    event.listen(engine.sync_engine, "handle_error", _translate_connection_errors)
    return engine


def make_sync_engine(target: DatabaseTarget, settings: Settings) -> Engine:
    engine = create_engine(
        target.runtime_url,
        pool_size=min(5, settings.database.pool_size),
        pool_pre_ping=False,  # watch_liveness pings only connections that may have died
        connect_args=_connect_args(settings, target.runtime_url),
    )
    watch_liveness(engine, ping_after_idle_s=settings.database.ping_after_idle_s)
    announce_document_writes(engine)  # ingestion's writes: read replicas must hear of them
    return engine


@dataclass
class Database:
    """The async engine and its session factory, created once per process."""

    target: DatabaseTarget
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, target: DatabaseTarget, settings: Settings) -> Database:
        return cls(target, make_async_engine(target, settings))

    async def dispose(self) -> None:
        await self.engine.dispose()


__all__ = [
    "Database",
    "DatabaseTarget",
    "check_database",
    "describe",
    "make_async_engine",
    "make_async_engine_at",
    "make_sync_engine",
    "resolve_database",
    "to_libpq_dsn",
    "to_sqlalchemy_url",
]
