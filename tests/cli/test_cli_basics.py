"""The `kb` command as a newcomer meets it: help, config, db, and one clear line per error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from server.db.embedded import EmbeddedPostgres
from server.db.home_lock import HomeLock
from tests.support.live_server import free_port

KB = str(Path(sys.executable).parent / "kb")


def run_kb(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    base.update(env or {})
    return subprocess.run(
        [KB, *args], capture_output=True, text=True, env=base, cwd=cwd, timeout=timeout
    )


GROUPS = ["db", "config", "sources", "jobs", "policy", "token", "keys", "audit"]


def test_help_explains_every_command() -> None:
    top = run_kb("--help")
    assert top.returncode == 0
    for name in ["serve", "version", *GROUPS]:
        assert name in top.stdout
    for name in GROUPS:
        sub = run_kb(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "Usage" in sub.stdout


def test_version() -> None:
    out = run_kb("version")
    assert out.returncode == 0 and out.stdout.startswith("kb ")


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "kb.yaml"
    cfg.write_text(
        "database:\n  url: postgresql://kb:hunter2@db.internal/kb\nhttp:\n  port: 8123\n"
    )
    out = run_kb("config", "show", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "8123" in out.stdout and "db.internal" in out.stdout
    assert "hunter2" not in out.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("http:\n  prot: 1\n", "http.prot: unknown key"),
        ("database:\n  pool_size: many\n", "database.pool_size"),
        ("http: [\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    out = run_kb("--config", str(cfg), "db", "current")
    assert out.returncode == 2
    assert expected in out.stderr and "bad.yaml" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    out = run_kb("db", "current", env={"KB_CONFIG": str(tmp_path / "gone.yaml")})
    assert out.returncode == 2
    assert "gone.yaml does not exist" in out.stderr


def test_unreachable_database_url() -> None:
    url = f"postgresql://kb:pw@127.0.0.1:{free_port()}/kb"
    out = run_kb("db", "current", env={"DATABASE_URL": url, "KB_DATABASE__CONNECT_TIMEOUT_S": "2"})
    assert out.returncode == 1
    assert "cannot connect to the database" in out.stderr
    assert "Traceback" not in out.stderr and "pw@" not in out.stderr


def test_database_without_pgvector() -> None:
    out = run_kb(
        "db", "current", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres"}
    )
    assert out.returncode == 1
    assert "no pgvector extension" in out.stderr


def test_db_upgrade_on_empty_external_database(pg_server: EmbeddedPostgres) -> None:
    """DATABASE_URL pointing at another (embedded) server: upgrade creates the schema."""
    name = "external_upgrade"
    with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {"DATABASE_URL": pg_server.uri(name)}
    before = run_kb("db", "current", env=env)
    assert before.returncode == 0 and "base (empty)" in before.stdout
    up = run_kb("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    after = run_kb("db", "current", env=env)
    assert after.returncode == 0 and "(head)" in after.stdout
    with psycopg.connect(pg_server.uri(name)) as conn:
        assert conn.execute("SELECT to_regclass('chunks')").fetchone() == ("chunks",)


def test_second_server_on_same_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with HomeLock(home):
        out = run_kb("serve", env={"KB_HOME": str(home)}, timeout=60)
    assert out.returncode == 1
    assert "is in use by another `kb serve`" in out.stderr
    assert not (home / "pg").exists(), "the refused server must not touch the data directory"
