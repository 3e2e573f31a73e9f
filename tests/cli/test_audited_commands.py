"""Every admin and read CLI command leaves an audit row, failures included, under one
operator identity; destructive commands refuse without --yes when nobody can confirm
(issue 8, hole 2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from server.cli.main import app
from server.usecases.admin import os_user


@pytest.fixture
def kb(fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("KB_CONFIG", "KB_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    monkeypatch.setenv("KB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KB_AUTH__MODE", "dev")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    yield invoke


def _rows(dsn: str) -> list[tuple[str, list[str], str, str | None, dict[str, Any]]]:
    with psycopg.connect(dsn) as conn:
        return [
            (r[0], r[1], r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT method, principals, outcome, target, arguments FROM audit_log ORDER BY id"
            ).fetchall()
        ]


OPERATOR = sorted(["role:admin", f"user:cli:{os_user()}"])


def test_failed_and_refused_commands_are_recorded(kb: Any, fresh_database: str) -> None:
    # kb search recorded only on success before: a refused search left no row.
    code, out = kb("search", "deploy", "--as", "alice", "--top-k", "500")
    assert code == 1 and "top_k" in out
    # kb sync, kb jobs, kb sources were not audited at all.
    code, out = kb("sync", "nope")
    assert code == 1 and "nope" in out
    assert kb("jobs", "list")[0] == 0
    assert kb("sources", "list")[0] == 0
    code, out = kb("sources", "remove", "nope", "--yes")
    assert code == 1
    rows = _rows(fresh_database)
    assert [(m, p, o, t) for m, p, o, t, _ in rows] == [
        ("search", ["user:alice"], "invalid", "kb search"),
        ("sources.sync", OPERATOR, "not_found", "nope"),
        ("jobs.list", OPERATOR, "ok", None),
        ("sources.list", OPERATOR, "ok", None),
        ("sources.remove", OPERATOR, "not_found", "nope"),
    ]
    assert rows[0][4] == {"query": "deploy", "top_k": 500}


def test_admin_token_mint_is_recorded_before_the_token_is_printed(
    kb: Any, fresh_database: str
) -> None:
    code, out = kb("token", "mint", "--sub", "root", "--admin")
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    ((method, principals, outcome, _, arguments),) = _rows(fresh_database)
    assert (method, principals, outcome) == ("token.mint", OPERATOR, "ok")
    assert arguments["sub"] == "root" and "kb.admin" in arguments["scopes"]
    assert token not in str(arguments)
    # A plain development token is no admin action and needs no database row.
    assert kb("token", "mint", "--sub", "alice")[0] == 0
    assert len(_rows(fresh_database)) == 1


def test_downgrade_asks_for_yes_and_is_recorded(kb: Any, fresh_database: str) -> None:
    code, out = kb("db", "downgrade", "--", "-1")
    assert code == 2 and "--yes" in out  # nothing ran: not a terminal, no --yes
    assert _rows(fresh_database) == []
    with psycopg.connect(fresh_database) as conn:
        (before,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
    code, out = kb("db", "downgrade", "--yes", "--", "-1")
    assert code == 0, out
    ((method, principals, outcome, _, arguments),) = _rows(fresh_database)
    assert (method, principals, outcome) == ("db.downgrade", OPERATOR, "ok")
    assert arguments == {"from": before, "to": "-1"}
