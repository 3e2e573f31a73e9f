"""A SQL sync holds no lock on the source between pages: DDL on another connection
completes during a sync, and rows that change between pages end exactly equal to the
source in the same run (issue 9, item 5). Real MariaDB."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from server.embeddings.base import Embedder
from server.ingest.runs import RunCounts
from server.ingest.service import SyncResult
from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents, sync, sync_engine
from tests.ingest.mariadb import connect, create_tickets, mariadb_database, tickets_source


def _timed(database: str, statement: str) -> float:
    with connect(database) as conn, conn.cursor() as cur:
        # Give up after 30 s rather than the server's default of a day.
        cur.execute("SET SESSION lock_wait_timeout = 30")
        started = time.monotonic()
        cur.execute(statement)
        return time.monotonic() - started


def _source_rows(database: str) -> dict[str, str]:
    with connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, body FROM tickets")
        return {f"tickets:{i}": body for i, body in cur.fetchall()}


def test_rename_and_alter_complete_while_a_sync_runs(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with mariadb_database() as database:
        create_tickets(database, 600)
        source = tickets_source(database)
        source["batch_size"] = 20
        settings = make_settings(sources=[source], ingest={"embed_batch_size": 8})
        with sync_engine(settings) as engine:
            first_commit = threading.Event()
            outcome: list[SyncResult | BaseException] = []

            def on_commit(counts: RunCounts) -> None:
                first_commit.set()

            def run() -> None:
                try:
                    outcome.append(sync(settings, engine, embedder, "tickets", on_commit=on_commit))
                except BaseException as exc:  # reported by the assertion below
                    outcome.append(exc)

            worker = threading.Thread(target=run)
            worker.start()
            assert first_commit.wait(120)
            rename = _timed(
                database, "RENAME TABLE tickets TO tickets_swap, tickets_swap TO tickets"
            )
            alter = _timed(database, "ALTER TABLE tickets COMMENT = 'migrated during a sync'")
            still_running = worker.is_alive()
            worker.join(600)
            docs = live_documents(engine, "tickets")
        assert still_running, "the sync ended before the DDL ran: the test proved nothing"
        # Before: the RENAME waited for the whole sync (7 minutes on a big table).
        assert rename < 3 and alter < 3, (rename, alter)
        result = outcome[0]
        assert isinstance(result, SyncResult) and result.status == "succeeded", result
        assert len(docs) == 600


def test_rows_changed_between_pages_end_equal_to_the_source_in_one_run(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    with mariadb_database() as database:
        create_tickets(database, 600)
        source = tickets_source(database)
        source["batch_size"] = 20
        settings = make_settings(sources=[source], ingest={"embed_batch_size": 8})
        changed = threading.Event()

        def change_the_source(counts: Any) -> None:
            # After the first committed batch: rows 1..~100 are read, the rest are not.
            if changed.is_set():
                return
            changed.set()
            with connect(database) as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO tickets VALUES (0, 'Ticket 0', 'Inserted behind the position.',"
                    " 'support', NOW(6)), (9000, 'Ticket 9000', 'Inserted ahead.', 'billing',"
                    " NOW(6))"
                )
                cur.execute(
                    "UPDATE tickets SET body = CONCAT('Edited after it was read: ', id), "
                    "updated_at = NOW(6) WHERE id IN (1, 590)"
                )
                cur.execute("DELETE FROM tickets WHERE id IN (2, 580)")

        with sync_engine(settings) as engine:
            result = sync(settings, engine, embedder, "tickets", on_commit=change_the_source)
            docs = live_documents(engine, "tickets")
            assert integrity_problems(engine) == []
        assert changed.is_set() and result.status == "succeeded"
        expected = _source_rows(database)
        assert set(docs) == set(expected)  # nothing missed, nothing deleted left behind
        for ext, body in expected.items():
            stored = " ".join(text for _, text in docs[ext]["chunks"])
            assert body in stored, ext
        assert "Edited after it was read: 1" in " ".join(t for _, t in docs["tickets:1"]["chunks"])
        # Each row stored once: no duplicate ids, and the run counted each row once.
        # 600 rows, minus 580 (deleted before its page), plus the 2 inserted; row 2 was read
        # before its deletion and is removed by the key scan at the end of the same run.
        assert (result.counts.docs_added, result.counts.docs_deleted) == (601, 1)
