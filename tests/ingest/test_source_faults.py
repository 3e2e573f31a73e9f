"""Source faults: a database that is down, or disappears mid-sync, fails the run clearly,
keeps everything already committed, and the next run resumes and converges."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from core.errors import ConnectorError
from server.embeddings.base import Embedder
from server.ingest import repository
from server.ingest.service import SyncBusy, run_sync
from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents, run_row, sync, sync_engine
from tests.ingest.mariadb import connect, create_tickets, mariadb_database, tickets_source
from tests.support.live_server import free_port


def create_slow_view(database: str) -> None:
    with connect(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE VIEW slow AS SELECT * FROM tickets WHERE SLEEP(0.01) = 0")


def latest_run(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        run_id = conn.execute(text("SELECT max(id) FROM ingest_runs")).scalar_one()
    return run_row(engine, run_id)


def cursor_of(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        row = repository.get_source(conn, name)
    assert row is not None
    return row.sync_state


def test_source_database_down_fails_the_run_and_keeps_the_data(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with mariadb_database() as database:
        create_tickets(database, 40)
        settings = make_settings(sources=[tickets_source(database)])
        with sync_engine(settings) as engine:
            sync(settings, engine, embedder, "tickets")
            before, cursor = live_documents(engine, "tickets"), cursor_of(engine, "tickets")
            down = tickets_source(database)
            down["url"] = f"mysql+pymysql://root@127.0.0.1:{free_port()}/{database}"
            broken = make_settings(sources=[down])
            with pytest.raises(ConnectorError) as info:
                sync(broken, engine, embedder, "tickets")
            run = latest_run(engine)
            assert run["status"] == "failed" and run["finished_at"]
            assert run["error"] == info.value.message
            assert "connect" in str(run["error"]).lower() and "Traceback" not in str(run["error"])
            assert live_documents(engine, "tickets") == before
            assert cursor_of(engine, "tickets") == cursor


def test_source_dropped_mid_sync_then_the_next_run_resumes(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    rows = 400
    with mariadb_database() as database:
        create_tickets(database, rows)
        create_slow_view(database)
        settings = make_settings(
            # A view that streams its rows slowly, so the stream is still open when the
            # source goes away.
            sources=[tickets_source(database, table="slow", name="tickets", updated_at=None)],
            ingest={"embed_batch_size": 16},
        )
        with sync_engine(settings) as engine:
            dropped = threading.Event()

            def drop() -> None:
                # The source goes away under the connector's open stream: its connection is
                # killed and the database dropped.
                with connect() as conn, conn.cursor() as cur:
                    cur.execute(
                        "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
                        "CONNECTION_ID()",
                        (database,),
                    )
                    for (thread_id,) in cur.fetchall():
                        cur.execute(f"KILL CONNECTION {int(thread_id)}")
                    cur.execute(f"DROP DATABASE `{database}`")

            dropper = threading.Thread(target=drop)

            def drop_after_first_commit(counts: object) -> None:
                if not dropped.is_set():
                    dropped.set()
                    dropper.start()

            with pytest.raises(ConnectorError) as info:
                run_sync(settings, engine, embedder, "tickets", on_commit=drop_after_first_commit)
            dropper.join(60)
            assert dropped.is_set() and not dropper.is_alive()
            failed = latest_run(engine)
            assert failed["status"] == "failed" and failed["error"] == info.value.message
            assert database in str(failed["error"]) or "database" in str(failed["error"]).lower()
            committed = live_documents(engine, "tickets")
            assert 0 < len(committed) == failed["docs_added"] < rows
            assert all(d["chunks"] for d in committed.values())  # nothing half-replaced
            assert cursor_of(engine, "tickets") == {}  # never advanced past committed data
            assert not integrity_problems(engine)

            with connect() as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{database}`")
            create_tickets(database, rows)
            create_slow_view(database)
            resumed = run_row(engine, sync(settings, engine, embedder, "tickets").run_id)
            assert resumed["status"] == "succeeded"
            assert resumed["docs_unchanged"] == len(committed)  # not embedded again
            assert resumed["docs_added"] == rows - len(committed)
            assert len(live_documents(engine, "tickets")) == rows
            assert not integrity_problems(engine)


def test_a_source_already_being_synced_is_refused(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: object
) -> None:
    settings = make_settings(sources=[{"name": "empty", "kind": "files", "root": str(tmp_path)}])
    with sync_engine(settings) as engine, engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(hashtextextended('kb.sync:empty', 0))"))
        with pytest.raises(SyncBusy, match="already running"):
            sync(settings, engine, embedder, "empty")
        holder.execute(text("SELECT pg_advisory_unlock(hashtextextended('kb.sync:empty', 0))"))
        assert sync(settings, engine, embedder, "empty").status == "succeeded"
