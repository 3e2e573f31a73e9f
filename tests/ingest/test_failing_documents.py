"""Documents that fail: the source's new ACL still applies to what is stored, the file is
read again next run, the source lists it until it ingests, and a file that kills the
worker is parsed once (issue 8 hole 6; issue 9 items 2 and 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from connectors.isolated_parse import CRASHED_AGAIN
from server.embeddings.base import Embedder
from server.ingest import catalog, repository, runs
from server.settings import Settings
from tests.connectors.corpus import make_docx
from tests.ingest.helpers import integrity_problems, live_documents, run_row, sync, sync_engine


def _sidecar(folder: Path, acl: list[str] | str) -> None:
    value = json.dumps(acl) if isinstance(acl, list) else acl
    (folder / ".kb-acl.yaml").write_text(f"acl: {value}\ncollection: hr\n")


def _chunk_acls(engine: Engine, external_id: str) -> set[tuple[str, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.acl FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.external_id = :e"
            ),
            {"e": external_id},
        ).scalars()
        return {tuple(sorted(r)) for r in rows}


def _cursor_files(engine: Engine, source: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = repository.get_source(conn, source)
    assert row is not None
    files: dict[str, Any] = row.sync_state["cursor"]["files"]
    return files


def test_tightened_sidecar_applies_even_when_the_file_now_fails_to_parse(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "share"
    hr = root / "hr"
    hr.mkdir(parents=True)
    _sidecar(hr, ["group:hr", "group:staff"])
    make_docx(hr / "plan.docx")
    (root / "open.md").write_text("# Open\n\nEveryone may read this note.\n")
    settings = make_settings(sources=[{"name": "share", "kind": "files", "root": str(root)}])
    with sync_engine(settings) as engine:
        sync(settings, engine, embedder, "share")
        assert live_documents(engine, "share")["hr/plan.docx"]["acl"] == [
            "group:hr",
            "group:staff",
        ]
        # One change: the sidecar drops group:staff AND the file is replaced by garbage.
        _sidecar(hr, ["group:hr"])
        (hr / "plan.docx").write_bytes(b"PK\x03\x04 this is not an Office file any more")
        second = sync(settings, engine, embedder, "share")
        doc = live_documents(engine, "share")["hr/plan.docx"]
        assert doc["acl"] == ["group:hr"]  # the old text is served only to the new ACL
        assert _chunk_acls(engine, "hr/plan.docx") == {("group:hr",)}
        assert integrity_problems(engine) == []
        assert second.counts.docs_failed == 1
        # The cursor did not move past the failed file: the next run reads it again.
        assert "hr/plan.docx" not in _cursor_files(engine, "share")
        third = sync(settings, engine, embedder, "share")
        assert third.counts.docs_failed == 1
        view = catalog.get_source(engine, settings, "share")
        assert [f["external_id"] for f in view["failing"]] == ["hr/plan.docx"]
        assert "corrupt DOCX" in view["failing"][0]["reason"]
        assert run_row(engine, third.run_id)["still_failing"] == 1

        # A sidecar that cannot be read gives no trustworthy ACL: the stored version goes.
        _sidecar(hr, "not-a-list")
        sync(settings, engine, embedder, "share")
        assert "hr/plan.docx" not in live_documents(engine, "share")

        # Fixed: ingested again, and no longer listed as failing.
        _sidecar(hr, ["group:hr"])
        make_docx(hr / "plan.docx")
        fixed = sync(settings, engine, embedder, "share")
        assert fixed.counts.docs_failed == 0
        assert live_documents(engine, "share")["hr/plan.docx"]["acl"] == ["group:hr"]
        view = catalog.get_source(engine, settings, "share")
        assert (view["failing_count"], view["failing"]) == (0, [])
        assert catalog.list_sources(engine, settings)[0]["failing"] == 0


def test_a_row_that_fails_stays_listed_until_it_ingests(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    import sqlite3

    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, lvl TEXT, ts TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, 'Quarterly plan', '1', '2026-01-01 10:00:00')")
        conn.execute("INSERT INTO notes VALUES (2, 'Broken level', 'high', '2026-01-01 09:00:00')")
    source = {
        "name": "crm",
        "kind": "sql",
        "url": f"sqlite:///{db}",
        "tables": [
            {
                "table": "notes",
                "primary_key": ["id"],
                "text_template": "{body}",
                "level_column": "lvl",
                "updated_at": "ts",
                "lookback_seconds": 0,
            }
        ],
    }
    settings = make_settings(sources=[source])
    with sync_engine(settings) as engine:
        first = sync(settings, engine, embedder, "crm")
        assert first.counts.docs_failed == 1
        # Nothing changed at the source: the row is not read again, the run has no failure of
        # its own, but the source still says the row is missing from the index.
        second = sync(settings, engine, embedder, "crm")
        assert second.counts.docs_failed == 0
        assert run_row(engine, second.run_id)["still_failing"] == 1
        view = catalog.get_source(engine, settings, "crm")
        assert [f["external_id"] for f in view["failing"]] == ["notes:2"]
        assert view["failing"][0]["run_id"] == first.run_id
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE notes SET lvl = '2', ts = '2026-01-02 10:00:00' WHERE id = 2")
        third = sync(settings, engine, embedder, "crm")
        assert third.counts.docs_added == 1
        assert catalog.get_source(engine, settings, "crm")["failing_count"] == 0
        assert run_row(engine, third.run_id)["still_failing"] == 0


def test_a_running_job_shows_the_time_elapsed_so_far(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    with sync_engine(settings) as engine:
        with engine.begin() as conn:
            repository.upsert_source(
                conn, name="s", kind="files", config={}, origin="api", enabled=True
            )
            run_id = runs.start_run(
                conn,
                "s",
                run_id=None,
                trigger="manual",
                worker=None,
                job_id=None,
                cursor_before={},
            )
            conn.execute(
                text(
                    "UPDATE ingest_runs SET started_at = now() - interval '90 seconds', "
                    "heartbeat_at = now() - interval '90 seconds' WHERE id = :i"
                ),
                {"i": run_id},
            )
        view = catalog.get_run(engine, run_id)
    assert view["status"] == "running"
    assert 89 <= view["duration_s"] < 150


CRASHING_SYNC = textwrap.dedent(
    """
    import json, os, signal, sys
    from connectors.parsers import dispatch
    from server.embeddings import load_embedder
    from server.ingest.service import run_sync
    from server.settings import Settings
    from tests.ingest.helpers import sync_engine

    real = dispatch.PARSERS_BY_EXTENSION[".md"]

    def parser_that_kills_the_process(data):
        # Stands for a parser that takes the worker down (out of memory, a crash in C).
        if b"KILL-THE-WORKER" in data:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(data)

    dispatch.PARSERS_BY_EXTENSION[".md"] = parser_that_kills_the_process
    settings = Settings(**json.loads(sys.argv[1]))
    with sync_engine(settings) as engine:
        result = run_sync(settings, engine, load_embedder(settings.embedding), "notes")
    print("RESULT", result.counts.docs_failed, result.counts.docs_added)
    """
)


def _crashing_sync(settings: Settings) -> subprocess.CompletedProcess[str]:
    raw = settings.model_dump(mode="json")
    raw["database"]["url"] = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    return subprocess.run(
        [sys.executable, "-c", CRASHING_SYNC, json.dumps(raw)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )


def test_a_file_that_kills_the_worker_fails_after_its_first_crash(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nThe first note, about invoices.\n")
    (root / "b.md").write_text("# B\n\nKILL-THE-WORKER\n")
    (root / "c.md").write_text("# C\n\nThe last note, about travel.\n")
    settings = make_settings(sources=[{"name": "notes", "kind": "files", "root": str(root)}])

    crashed = _crashing_sync(settings)
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    # The retry (same killing parser) parses the file in a child process: the child dies,
    # the worker does not, and the file fails with the reason.
    retried = _crashing_sync(settings)
    assert retried.returncode == 0, retried.stderr[-2000:]
    assert "RESULT 1 2" in retried.stdout
    # And so on every later run while the file is unchanged: never the worker again.
    assert _crashing_sync(settings).returncode == 0
    with sync_engine(settings) as engine:
        assert set(live_documents(engine, "notes")) == {"a.md", "c.md"}
        view = catalog.get_source(engine, settings, "notes")
        assert [(f["external_id"], f["reason"]) for f in view["failing"]] == [
            ("b.md", CRASHED_AGAIN)
        ]
        # A kill that was not the file's fault (this process parses it without harm): the
        # isolated parse succeeds and the document ingests.
        harmless = sync(settings, engine, embedder, "notes")
        assert (harmless.counts.docs_failed, harmless.counts.docs_added) == (0, 1)
        assert catalog.get_source(engine, settings, "notes")["failing_count"] == 0
        # A new version that kills the worker again gets the same treatment.
        (root / "b.md").write_text("# B\n\nKILL-THE-WORKER again\n")
        assert _crashing_sync(settings).returncode == -9
        assert _crashing_sync(settings).returncode == 0
        # A fixed version is parsed in the worker as usual.
        (root / "b.md").write_text("# B\n\nNow a harmless note about holidays.\n")
        fixed = sync(settings, engine, embedder, "notes")
        assert (fixed.counts.docs_failed, fixed.counts.docs_updated) == (0, 1)
        assert catalog.get_source(engine, settings, "notes")["failing_count"] == 0
