"""`kb sources`, `kb sync` and `kb jobs` as an operator uses them (in-process CLI runner)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from server.cli.main import app
from server.embeddings.base import Embedder
from server.ingest import catalog
from server.jobs.worker import run_worker
from server.settings import Settings
from tests.ingest.helpers import sync, sync_engine
from tests.jobs.conftest import target_of, write_notes


@pytest.fixture
def kb(tmp_path: Path, fresh_database: str) -> Callable[..., Any]:
    config = tmp_path / "kb.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "database": {"url": fresh_database},
                # Sources added with `kb sources add` read only under these folders.
                "ingest": {"runtime_file_roots": [str(tmp_path)]},
            }
        )
    )
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["--config", str(config), *args])

    return invoke


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "hr.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE staff (id INTEGER PRIMARY KEY, name TEXT, bio TEXT)")
        conn.execute("INSERT INTO staff VALUES (1, 'Alice', 'Runs payroll.')")
    return path


def sql_definition(path: Path, **entry: Any) -> dict[str, Any]:
    table = {"table": "staff", "primary_key": "id", "text_template": "{name}: {bio}", **entry}
    return {"name": "hr", "kind": "sql", "url": f"sqlite:///{path}", "tables": [table]}


def test_sources_add_refuses_bad_definitions_with_the_reason(
    kb: Callable[..., Any], tmp_path: Path, sqlite_db: Path
) -> None:
    cases = {
        "missing-dir": ({"name": "docs", "kind": "files", "root": str(tmp_path / "nope")}, "nope"),
        "missing-table": (sql_definition(sqlite_db, table="salaries"), "salaries"),
        "missing-column": (sql_definition(sqlite_db, text_template="{name}: {salary}"), "salary"),
        "not-select": (
            {
                **sql_definition(sqlite_db),
                "tables": [
                    {
                        "name": "x",
                        "primary_key": "id",
                        "text_template": "{name}",
                        "query": "DELETE FROM staff",
                    }
                ],
            },
            "select",
        ),
        "literal-password": (
            {**sql_definition(sqlite_db), "url": "mysql+pymysql://kb:hunter2@db/hr"},
            "password",
        ),
    }
    for label, (definition, needle) in cases.items():
        file = tmp_path / f"{label}.json"
        file.write_text(json.dumps(definition))
        result = kb("sources", "add", str(file))
        assert result.exit_code == 2, (label, result.output)
        message = " ".join(result.stderr.split())
        assert needle.lower() in message.lower(), (label, message)
        assert "Traceback" not in result.output + result.stderr
    listed = kb("sources", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_add_list_show_sync_jobs_remove(
    kb: Callable[..., Any], tmp_path: Path, sqlite_db: Path
) -> None:
    notes = tmp_path / "notes"
    write_notes(notes, 2)
    added = kb(
        "sources",
        "add",
        "--name",
        "notes",
        "--kind",
        "files",
        "--set",
        f"root={notes}",
        "--set",
        "schedule=*/10 * * * *",
        "--set",
        "acl=[group:eng]",
    )
    assert added.exit_code == 0, added.output + added.stderr
    file = tmp_path / "hr.yaml"
    file.write_text(yaml.safe_dump(sql_definition(sqlite_db)))
    assert kb("sources", "add", str(file)).exit_code == 0
    again = kb("sources", "add", str(file))
    assert again.exit_code == 2 and "already exists" in again.stderr

    sources = {s["name"]: s for s in json.loads(kb("sources", "list", "--json").stdout)}
    assert set(sources) == {"notes", "hr"}
    assert sources["notes"]["schedule"] == "*/10 * * * *" and sources["notes"]["origin"] == "cli"
    assert sources["notes"]["config"]["acl"] == ["group:eng"]

    queued = kb("sync", "notes")
    assert queued.exit_code == 0 and "queued run" in queued.stdout
    twice = kb("sync", "notes")
    assert twice.exit_code == 1 and "already queued" in twice.stderr
    jobs = json.loads(kb("jobs", "list", "--json").stdout)
    assert [(j["source"], j["status"]) for j in jobs] == [("notes", "queued")]
    shown = kb("jobs", "show", str(jobs[0]["id"]))
    assert shown.exit_code == 0 and "queued" in shown.stdout
    assert kb("jobs", "show", "999").exit_code == 1

    detail = json.loads(kb("sources", "show", "hr", "--json").stdout)
    assert detail["kind"] == "sql" and detail["documents"] == 0
    assert kb("sources", "remove", "hr", "--yes").exit_code == 0
    assert kb("sources", "show", "hr").exit_code == 1
    assert {s["name"] for s in json.loads(kb("sources", "list", "--json").stdout)} == {"notes"}


def test_failed_documents_show_in_jobs_show(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    write_notes(root, 1)
    (root / "empty.md").write_bytes(b"")
    settings = make_settings(sources=[{"name": "docs", "kind": "files", "root": str(root)}])
    with sync_engine(settings) as engine:
        run_id = sync(settings, engine, embedder, "docs").run_id
    config = tmp_path / "kb.yaml"
    assert settings.database.url is not None
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": settings.database.url.get_secret_value()},
                "home": str(tmp_path / "home"),
            }
        )
    )
    result = CliRunner().invoke(app, ["--config", str(config), "jobs", "show", str(run_id)])
    assert result.exit_code == 0
    out = " ".join(result.stdout.split())
    assert "succeeded" in out and "1 added" in out and "1 failed" in out
    assert "empty.md" in out and "0 bytes" in out


def test_sync_wait_follows_the_run_a_worker_executes(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    write_notes(notes, 3)
    source = {"name": "notes", "kind": "files", "root": str(notes)}
    settings = make_settings(sources=[source])
    assert settings.database.url is not None
    config = tmp_path / "kb.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "database": {"url": settings.database.url.get_secret_value()},
                "sources": [source],
            }
        )
    )

    def worker_once_queued() -> None:
        with sync_engine(settings) as engine:
            deadline = time.monotonic() + 60
            while not catalog.list_runs(engine) and time.monotonic() < deadline:
                time.sleep(0.1)
        asyncio.run(
            run_worker(
                settings,
                target_of(settings),
                embedder=embedder,
                wait=False,
                install_signal_handlers=False,
            )
        )

    worker = threading.Thread(target=worker_once_queued)
    worker.start()
    result = CliRunner().invoke(app, ["--config", str(config), "sync", "notes", "--wait"])
    worker.join(120)
    assert result.exit_code == 0, result.output + result.stderr
    out = " ".join(result.stdout.split())
    assert "queued run" in out and "succeeded" in out and "3 added" in out
