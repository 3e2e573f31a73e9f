"""Database resolution: embedded by default, DATABASE_URL checked for pgvector >= 0.8."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import DatabaseUnavailable, PgvectorMissing
from server.db.embedded import EmbeddedPostgres
from server.db.engine import (
    DatabaseTarget,
    check_database,
    parse_version,
    pool_shortfall,
    to_sqlalchemy_url,
)
from server.settings import Settings
from tests.support.live_server import free_port


def test_pgvector_version_is_checked(pg_server: EmbeddedPostgres, fresh_database: str) -> None:
    settings = Settings(database={"url": fresh_database})
    version = check_database(DatabaseTarget(to_sqlalchemy_url(fresh_database)), settings)
    assert parse_version(version) >= (0, 8)


def test_database_without_pgvector_is_refused() -> None:
    # The machine's own PostgreSQL 15 on 127.0.0.1:5432 has no pgvector extension.
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    settings = Settings(database={"url": url})
    with pytest.raises(PgvectorMissing, match="no pgvector extension"):
        check_database(DatabaseTarget(to_sqlalchemy_url(url)), settings)


def test_unreachable_database_gives_one_clear_line() -> None:
    url = f"postgresql://kb:topsecret@127.0.0.1:{free_port()}/kb"
    settings = Settings(database={"url": url, "connect_timeout_s": 2})
    with pytest.raises(DatabaseUnavailable) as info:
        check_database(DatabaseTarget(to_sqlalchemy_url(url)), settings)
    assert "cannot connect" in str(info.value)
    assert "topsecret" not in str(info.value)


def test_non_postgres_url_is_refused() -> None:
    with pytest.raises(DatabaseUnavailable, match="must be a PostgreSQL URL"):
        to_sqlalchemy_url("mysql://root@localhost/kb")


def test_version_parsing() -> None:
    assert parse_version("0.8.6") > parse_version("0.6.2")
    assert parse_version("0.10.0") > parse_version("0.8.0")


def test_embedded_server_lifecycle(tmp_path: Path) -> None:
    """Start, write, stop; start again on the same KB_HOME and find the data."""
    import psycopg

    home = tmp_path / "home"
    first = EmbeddedPostgres(home, "lifecycle")
    uri = first.start()
    pid = first.pid
    assert pid is not None
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    first.stop()
    assert not (home / "pg" / "postmaster.pid").exists(), "server should stop with its last handle"

    second = EmbeddedPostgres(home, "lifecycle")
    uri = second.start()
    try:
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
            ver = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
            assert ver is not None and parse_version(ver[0]) >= (0, 8)
    finally:
        second.stop()


def test_server_stops_after_a_killed_process_left_its_handle(tmp_path: Path) -> None:
    """A kb process killed with -9 leaves its pid in the handle list; the next process to
    exit must still stop the server instead of leaving it running forever."""
    import signal
    import subprocess
    import sys

    home = tmp_path / "home"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from server.db.embedded import EmbeddedPostgres;"
            "EmbeddedPostgres(Path(sys.argv[1]), 'killed').start();"
            "print('up', flush=True); time.sleep(120)",
            str(home),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert (home / "pg" / "postmaster.pid").exists(), "the killed process left the server up"

    survivor = EmbeddedPostgres(home, "killed")
    survivor.start()
    survivor.stop()
    assert not (home / "pg" / "postmaster.pid").exists(), "the last live handle must stop it"


def test_a_pool_smaller_than_the_admitted_calls_is_called_out() -> None:
    # The defaults fit: 8 admitted calls, 10 pooled connections.
    assert pool_shortfall(Settings()) is None
    loaded = Settings(http={"max_concurrent_calls": 64}, database={"pool_size": 20})
    warning = pool_shortfall(loaded)
    assert warning is not None and "pool_size 20" in warning and "(66)" in warning
    assert (
        pool_shortfall(
            loaded.model_copy(
                update={"database": loaded.database.model_copy(update={"pool_size": 66})}
            )
        )
        is None
    )
