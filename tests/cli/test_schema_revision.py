"""Only `kb serve` and `kb db upgrade` migrate; every other command checks the revision.

A newer kb pointed at a database used by running servers must not upgrade its schema as a
side effect of `kb policy list`: it refuses, names both revisions and the command to run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from server.db import migrate
from server.db.engine import to_sqlalchemy_url
from tests.support.live_server import free_port
from tests.support.server_process import KB, ServerProcess, server_env


def previous_revision() -> str:
    script = migrate.ScriptDirectory.from_config(
        migrate.alembic_config(to_sqlalchemy_url("postgresql:///x"))
    )
    down = script.get_revision(migrate.head_revision()).down_revision
    assert isinstance(down, str)
    return down


def run_kb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KB), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def older_database(fresh_database: str) -> str:
    """A database one migration behind this kb (as after installing a newer kb)."""
    migrate.downgrade(to_sqlalchemy_url(fresh_database), previous_revision())
    return fresh_database


def revision_of(url: str) -> str | None:
    return migrate.current_revision(to_sqlalchemy_url(url))


@pytest.mark.parametrize(
    "command",
    [
        ["policy", "list"],
        ["sources", "list"],
        ["keys", "list"],
        ["jobs", "list"],
        ["search", "anything", "--as", "user:alice"],
    ],
)
def test_commands_refuse_an_older_schema_and_leave_it(
    older_database: str, tmp_path: Path, command: list[str]
) -> None:
    before = previous_revision()
    out = run_kb(server_env(older_database, tmp_path), *command)
    assert out.returncode == 1, out.stdout
    expected = (
        f"database schema is at {before}, this kb expects {migrate.head_revision()}: "
        "run `kb db upgrade`"
    )
    assert expected in " ".join(out.stderr.split()), out.stderr
    assert revision_of(older_database) == before, "a non-migrating command changed the schema"


def test_db_upgrade_migrates_then_commands_run(older_database: str, tmp_path: Path) -> None:
    env = server_env(older_database, tmp_path)
    up = run_kb(env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert revision_of(older_database) == migrate.head_revision()
    listed = run_kb(env, "policy", "list")
    assert listed.returncode == 0, listed.stderr


def test_a_schema_from_a_newer_kb_is_refused(fresh_database: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    out = run_kb(server_env(fresh_database, tmp_path), "policy", "list")
    assert out.returncode == 1
    message = " ".join(out.stderr.split())
    assert "database schema is at 9999_from_the_future" in message
    assert "migrated by a newer kb" in message


def test_serve_no_migrate_refuses_an_older_schema(older_database: str, tmp_path: Path) -> None:
    env = server_env(older_database, tmp_path)
    out = run_kb(env, "serve", "--no-migrate", "--port", str(free_port()))
    assert out.returncode == 1
    assert "run `kb db upgrade`" in " ".join(out.stderr.split())
    assert revision_of(older_database) == previous_revision()


@pytest.mark.slow
def test_serve_migrates_an_older_schema(older_database: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(older_database, tmp_path)
    cmd = [str(KB), "serve", "--port", str(port)]
    with ServerProcess(cmd, env, port, tmp_path / "serve.log"):
        assert revision_of(older_database) == migrate.head_revision()
