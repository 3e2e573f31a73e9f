"""SQL rows on the real MariaDB and PostgreSQL servers: an ACL-column change updates the
stored rows and every chunk without embedding; a text change still re-embeds; the watch
probe tells updates (no deletion scan needed) from deletions (scan needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from connectors.sql import SqlConnector
from server.ingest.sources import open_connector
from server.settings import Settings
from tests.freshness.helpers import (
    CountingEmbedder,
    chunk_rows,
    postgres_source_database,
    postings_count,
)
from tests.ingest import mariadb
from tests.ingest.helpers import integrity_problems, live_documents, sync

ROWS = 40


class Source:
    """One tickets table on one server kind, with the statements the test needs."""

    def __init__(self, kind: str, url: str, execute: Callable[[str], None]) -> None:
        self.kind, self.url, self.execute = kind, url, execute

    def now(self) -> str:
        return "NOW(6)" if self.kind == "mariadb" else "clock_timestamp()"


@contextmanager
def tickets(kind: str) -> Iterator[Source]:
    if kind == "mariadb":
        with mariadb.mariadb_database("kbfresh") as name:
            mariadb.create_tickets(name, ROWS)

            def run(sql: str) -> None:
                with mariadb.connect(name) as conn, conn.cursor() as cur:
                    cur.execute(sql)

            yield Source(kind, mariadb.url(name), run)
        return
    with postgres_source_database() as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")

        def run(sql: str) -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql)  # type: ignore[arg-type]

        run(
            "CREATE TABLE tickets (id INT PRIMARY KEY, subject TEXT NOT NULL, body TEXT NOT NULL,"
            " team TEXT NOT NULL, updated_at TIMESTAMP(6) NOT NULL)"
        )
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tickets VALUES (%s, %s, %s, %s, "
                "TIMESTAMP '2024-01-01' + make_interval(mins => %s))",
                [mariadb.ticket(i) for i in range(1, ROWS + 1)],
            )
        yield Source(kind, url, run)


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_acl_column_change_updates_every_chunk_without_embedding(
    kind: str, make_settings: Callable[..., Settings], engine: Engine, counting: CountingEmbedder
) -> None:
    with tickets(kind) as src:
        definition: dict[str, Any] = mariadb.tickets_source("x")
        definition["url"] = src.url
        settings = make_settings(sources=[definition])
        first = sync(settings, engine, counting, "tickets")
        assert first.counts.docs_added == ROWS
        before = chunk_rows(engine, "tickets")
        postings = postings_count(engine)
        embedded = counting.texts
        assert embedded >= ROWS

        connector = open_connector(settings.sources[0], settings)
        assert isinstance(connector, SqlConnector)
        probe0 = connector.probe()["tickets"]
        assert probe0.rows == ROWS and probe0.key_checksum is not None

        # Five rows move to another team: an authorization-only change.
        src.execute(f"UPDATE tickets SET team = 'legal', updated_at = {src.now()} WHERE id <= 5")
        probe1 = connector.probe()["tickets"]
        assert not probe1.same_state(probe0) and not probe1.keys_changed(probe0)
        assert probe1.age_seconds is not None and probe1.age_seconds < 60

        result = sync(settings, engine, counting, "tickets")
        assert counting.texts == embedded, "an ACL-only change embedded text"
        assert result.counts.acl_updated == 5
        assert result.counts.docs_updated == 0 and result.counts.chunks_written == 0
        after = chunk_rows(engine, "tickets")
        assert set(after) == set(before)
        moved = {cid for cid, r in after.items() if int(r["external_id"].split(":")[1]) <= 5}
        assert len(moved) >= 5
        assert all(after[c]["acl"] == ["group:legal"] for c in moved)
        assert all(after[c]["embedding"] == before[c]["embedding"] for c in moved)
        others = [r for c, r in after.items() if c not in moved]
        assert all(r["acl"] != ["group:legal"] for r in others)
        assert postings_count(engine) == postings
        assert integrity_problems(engine) == []

        # Text changes are still embedded.
        src.execute(
            f"UPDATE tickets SET body = CONCAT(body, ' Now also smoking.'), "
            f"updated_at = {src.now()} WHERE id IN (7, 8)"
        )
        result = sync(settings, engine, counting, "tickets")
        assert result.counts.docs_updated == 2 and result.counts.acl_updated == 0
        assert counting.texts > embedded

        # A deletion moves the count and the checksum; a sync without the key scan keeps the
        # row (the watcher asks for the scan exactly then), one with it removes the row.
        src.execute("DELETE FROM tickets WHERE id = 9")
        probe2 = connector.probe()["tickets"]
        probe_before_delete = probe1
        assert probe2.keys_changed(probe_before_delete) and probe2.rows == ROWS - 1
        kept = sync(settings, engine, counting, "tickets", scan_deletions=False)
        assert kept.counts.docs_deleted == 0
        assert "tickets:9" in live_documents(engine, "tickets")
        scanned = sync(settings, engine, counting, "tickets")
        assert scanned.counts.docs_deleted == 1
        assert "tickets:9" not in live_documents(engine, "tickets")

        # Same count, different keys (a delete hidden by an insert): the checksum moves.
        src.execute("DELETE FROM tickets WHERE id = 10")
        src.execute(
            f"INSERT INTO tickets VALUES (1000, 'Ticket 1000', 'New body', 'support', {src.now()})"
        )
        probe3 = connector.probe()["tickets"]
        assert probe3.rows == probe2.rows and probe3.keys_changed(probe2)
        connector.close()
        assert integrity_problems(engine) == []
