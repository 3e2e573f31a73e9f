"""Watchers in this process: changes made while a watched sync is in the middle of its
work are all applied (none lost), for a folder and for a MariaDB table; the watcher
records itself and the lag of what it applied."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from server.db.engine import DatabaseTarget, to_sqlalchemy_url
from server.ingest import freshness
from server.jobs.watch import SourceWatcher
from server.settings import Settings
from tests.freshness.helpers import CountingEmbedder
from tests.ingest import mariadb
from tests.ingest.helpers import integrity_problems, live_documents

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEADLINE_S = 180.0  # generous: the machine is shared and loaded


def _target(settings: Settings) -> DatabaseTarget:
    assert settings.database.url is not None
    return DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))


async def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"never happened: {what}")


async def _start(
    settings: Settings, engine: Engine, counting: CountingEmbedder
) -> tuple[SourceWatcher, asyncio.Event, asyncio.Task[None]]:
    watcher = SourceWatcher(
        settings, _target(settings), engine, counting, "test-worker", settings.sources[0]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    return watcher, stop, task


async def _stop(stop: asyncio.Event, task: asyncio.Task[None], counting: CountingEmbedder) -> None:
    counting.release()
    stop.set()
    await asyncio.wait_for(task, 120)


async def test_files_changes_during_a_watched_sync_are_not_lost(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    engine: Engine,
    counting: CountingEmbedder,
) -> None:
    root = tmp_path / "share"
    (root / "hr").mkdir(parents=True)
    (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:hr, group:staff]\n")
    for i in range(6):
        (root / "hr" / f"memo{i}.md").write_text(f"# Memo {i}\n\nHR memo number {i} text.")
    (root / "old.md").write_text("# Old\n\nTo be deleted.")
    source: dict[str, Any] = {
        "name": "share",
        "kind": "files",
        "root": str(root),
        "acl": ["group:eng"],
        "watch": True,
        "watch_debounce_ms": 100,
    }
    settings = make_settings(sources=[source])
    counting.hold()  # the catch-up sync stops at its first embedding
    watcher, stop, task = await _start(settings, engine, counting)
    try:
        assert await asyncio.to_thread(counting.entered.wait, DEADLINE_S)
        assert watcher.holding
        # Changes while that sync is mid-way: new file, ACL tightened, a file deleted.
        (root / "new.md").write_text("# New\n\nWritten during the sync.")
        (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:hr]\n")
        (root / "old.md").unlink()
        counting.release()

        def applied() -> bool:
            docs = live_documents(engine, "share")
            hr = [d for ext, d in docs.items() if ext.startswith("hr/")]
            return (
                "new.md" in docs
                and "old.md" not in docs
                and len(hr) == 6
                and all(d["acl"] == ["group:hr"] for d in hr)
            )

        await _eventually(applied, "every change made during the sync applied")
        assert integrity_problems(engine) == []
        with engine.connect() as conn:
            fresh = freshness.read_freshness(conn)["share"]
        assert fresh.watcher == "test-worker" and fresh.last_change_at is not None

        # Later, an ACL-only edit is applied by the watcher without any embedding.
        embedded = counting.texts
        (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:hr, group:audit]\n")

        def widened() -> bool:
            hr = [d for e, d in live_documents(engine, "share").items() if e.startswith("hr/")]
            return all(d["acl"] == ["group:audit", "group:hr"] for d in hr)

        await _eventually(widened, "the watched sidecar edit applied")
        assert counting.texts == embedded

        def lag_known() -> bool:
            # An event-driven change is dated by the file's own time: its lag is known
            # (recorded just after the run's commit, hence eventually).
            with engine.connect() as conn:
                lag = freshness.read_freshness(conn)["share"].lag_seconds
            return lag is not None and lag >= 0

        await _eventually(lag_known, "the lag of the watched change recorded")
        with engine.connect() as conn:
            acl_runs = conn.execute(
                text(
                    "SELECT count(*) FROM ingest_runs WHERE source = 'share' "
                    "AND trigger = 'watch' AND acl_updated = 6"
                )
            ).scalar_one()
        assert acl_runs >= 1
    finally:
        await _stop(stop, task, counting)
    with engine.connect() as conn:
        assert freshness.read_freshness(conn)["share"].watcher is None


async def test_sql_changes_during_a_watched_sync_are_not_lost(
    make_settings: Callable[..., Settings], engine: Engine, counting: CountingEmbedder
) -> None:
    with mariadb.mariadb_database("kbwatch") as name:
        mariadb.create_tickets(name, 30)
        definition = mariadb.tickets_source(name)
        definition.update(watch=True, watch_interval_seconds=0.5)
        settings = make_settings(sources=[definition])

        def run(sql: str) -> None:
            with mariadb.connect(name) as conn, conn.cursor() as cur:
                cur.execute(sql)

        counting.hold()
        watcher, stop, task = await _start(settings, engine, counting)
        try:
            assert await asyncio.to_thread(counting.entered.wait, DEADLINE_S)
            run("UPDATE tickets SET team = 'legal', updated_at = NOW(6) WHERE id <= 4")
            run(
                "UPDATE tickets SET body = 'Rewritten during the sync', updated_at = NOW(6) "
                "WHERE id = 20"
            )
            run("DELETE FROM tickets WHERE id = 30")
            run("INSERT INTO tickets VALUES (31, 'Ticket 31', 'Brand new', 'support', NOW(6))")
            counting.release()

            def applied() -> bool:
                docs = live_documents(engine, "tickets")
                return (
                    "tickets:30" not in docs
                    and "tickets:31" in docs
                    and all(docs[f"tickets:{i}"]["acl"] == ["group:legal"] for i in range(1, 5))
                    and any("Rewritten" in c[1] for c in docs["tickets:20"]["chunks"])
                )

            await _eventually(applied, "every row change made during the sync applied")
            assert integrity_problems(engine) == []

            # Then an ACL-only change on the idle, watched table: no embedding.
            embedded = counting.texts
            run("UPDATE tickets SET team = 'audit', updated_at = NOW(6) WHERE id IN (5, 6)")

            def enforced() -> bool:
                docs = live_documents(engine, "tickets")
                return all(docs[f"tickets:{i}"]["acl"] == ["group:audit"] for i in (5, 6))

            await _eventually(enforced, "the watched ACL change applied")
            assert counting.texts == embedded

            def lag_known() -> bool:
                with engine.connect() as conn:
                    fresh = freshness.read_freshness(conn)["tickets"]
                return fresh.lag_seconds is not None and fresh.last_poll_at is not None

            await _eventually(lag_known, "the lag of the watched change recorded")
        finally:
            await _stop(stop, task, counting)
