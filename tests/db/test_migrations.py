"""Migrations: upgrade -> downgrade -> upgrade on a fresh database; models match them."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from server.db import migrate
from server.db.embedded import EmbeddedPostgres
from server.db.engine import to_sqlalchemy_url
from server.db.models import Base

EXPECTED_TABLES = {
    "sources",
    "documents",
    "chunks",
    "ingest_runs",
    "ingest_failures",
    "audit_log",
    "policy_rules",
    "policy_versions",
    "api_keys",
    "procrastinate_jobs",
}


def _empty_database(pg_server: EmbeddedPostgres, name: str) -> str:
    with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return pg_server.uri(name)


def _tables(url: str) -> set[str]:
    engine = create_engine(to_sqlalchemy_url(url), poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_round_trip(pg_server: EmbeddedPostgres) -> None:
    uri = _empty_database(pg_server, "migration_round_trip")
    url = to_sqlalchemy_url(uri)
    assert migrate.current_revision(url) is None

    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert EXPECTED_TABLES <= _tables(uri)

    migrate.downgrade(url, "base")
    assert migrate.current_revision(url) is None
    assert _tables(uri) <= {"alembic_version"}

    migrate.upgrade(url)
    assert migrate.is_current(url)
    assert EXPECTED_TABLES <= _tables(uri)


def test_models_match_migrations(fresh_database: str) -> None:
    """Autogenerate against the migrated schema finds nothing to change."""
    engine = create_engine(to_sqlalchemy_url(fresh_database), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diff if "procrastinate" not in repr(d)]
    assert ours == []


def test_audit_log_is_append_only(fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_log (principals, transport, method, outcome) "
            "VALUES ('{user:a}', 'cli', 'test', 'ok')"
        )
        for statement in ("UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"):
            try:
                conn.execute(statement)
            except psycopg.errors.RaiseException as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{statement} was allowed")
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
