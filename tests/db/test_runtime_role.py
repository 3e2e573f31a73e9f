"""Migrate as the owner, run as kb_runtime: the running server cannot rewrite the audit log.

The attack: code running in the server (a bug, an injected statement) tries to erase or
rewrite audit rows, or to switch the append-only trigger off first. As kb_runtime every
one of those is refused by privileges, before the trigger is even consulted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from server.db.engine import RUNTIME_ROLE, DatabaseTarget, make_sync_engine
from server.settings import Settings

INSERT_ROW = (
    "INSERT INTO audit_log (principals, transport, method, outcome) "
    "VALUES ('{user:alice}', 'cli', 'test', 'ok')"
)


@pytest.fixture
def runtime_engine(db_target: DatabaseTarget, settings: Settings) -> Iterator[Engine]:
    engine = make_sync_engine(db_target, settings)
    yield engine
    engine.dispose()


def run(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def test_processes_act_as_the_runtime_role(
    runtime_engine: Engine, db_target: DatabaseTarget
) -> None:
    with runtime_engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == RUNTIME_ROLE
    # The plain-psycopg clients (procrastinate, the policy listener) too.
    with psycopg.connect(db_target.dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (RUNTIME_ROLE,)


def test_runtime_role_appends_and_reads_the_audit_log(runtime_engine: Engine) -> None:
    run(runtime_engine, INSERT_ROW)
    with runtime_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1


@pytest.mark.parametrize(
    "attack",
    [
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET outcome = 'denied'",
        "TRUNCATE audit_log",
        "DROP TABLE audit_log",
        "DROP TRIGGER audit_log_append_only ON audit_log",
    ],
)
def test_runtime_role_cannot_rewrite_the_audit_log(runtime_engine: Engine, attack: str) -> None:
    run(runtime_engine, INSERT_ROW)
    with pytest.raises(DBAPIError) as refused:
        run(runtime_engine, attack)
    # Refused by privileges, not merely by the append-only trigger.
    assert isinstance(refused.value.orig, errors.InsufficientPrivilege), refused.value
    with runtime_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), min(outcome) FROM audit_log")).one() == (1, "ok")


def test_runtime_role_owns_nothing(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        owned = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = %s",
            (RUNTIME_ROLE,),
        ).fetchall()
        assert owned == []
        assert conn.execute(
            "SELECT has_table_privilege(%s, 'audit_log', 'UPDATE'),"
            " has_table_privilege(%s, 'audit_log', 'DELETE'),"
            " has_table_privilege(%s, 'audit_log', 'TRUNCATE'),"
            " has_table_privilege(%s, 'audit_log', 'INSERT'),"
            " has_table_privilege(%s, 'chunks', 'DELETE')",
            (RUNTIME_ROLE,) * 5,
        ).fetchone() == (False, False, False, True, True)


def test_runtime_role_keeps_the_statement_timeout(runtime_engine: Engine) -> None:
    # Both are libpq options; one must not replace the other.
    with runtime_engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "30s"
        assert conn.execute(text("SELECT current_user")).scalar() == RUNTIME_ROLE


def test_the_embedded_default_runs_as_the_runtime_role(tmp_path: Path) -> None:
    from server.db import migrate
    from server.db.engine import resolve_database

    settings = Settings(home=str(tmp_path / "home"))
    target = resolve_database(settings)
    try:
        migrate.upgrade(target.url)
        engine = make_sync_engine(target, settings)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_user")).scalar() == RUNTIME_ROLE
            with pytest.raises(DBAPIError) as refused:
                run(engine, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            assert isinstance(refused.value.orig, errors.InsufficientPrivilege)
        finally:
            engine.dispose()
    finally:
        target.close()
