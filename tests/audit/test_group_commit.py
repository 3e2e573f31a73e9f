"""Concurrent reads' audit rows share a commit; each call still waits for its own row.

The attacks: a row the database refuses inside a batch (only its own call fails, the
others' rows are kept), a call that returns before its row is durable (checked from
another connection the moment each call returns), and many calls at once (every row
written once, in fewer commits than rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast
from unittest import mock

import anyio
import anyio.lowlevel
import psycopg
import pytest

from core.identity import Caller
from server.audit.group_commit import AuditGroupCommit
from server.db.engine import Database
from server.runtime import open_runtime
from server.settings import Settings

ALICE = Caller.of("user:alice", transport="http")


def _count(uri: str, target: str) -> int:
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log WHERE target = %s", (target,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.anyio
async def test_concurrent_reads_share_commits_and_every_row_is_written(
    make_settings: Callable[..., Settings], fresh_database: str
) -> None:
    async with open_runtime(make_settings(), load_model=False) as runtime:
        insert = mock.patch.object(
            AuditGroupCommit, "_insert", autospec=True, side_effect=AuditGroupCommit._insert
        )
        durable: list[int] = []

        async def one(i: int) -> None:
            async with runtime.audit.call(ALICE, method="tools/call", target=f"gc-{i % 2}"):
                await anyio.lowlevel.checkpoint()
            # The call has returned: its row must already be visible to anyone.
            durable.append(_count(fresh_database, f"gc-{i % 2}"))

        with insert as spy:
            async with anyio.create_task_group() as tg:
                for i in range(60):
                    tg.start_soon(one, i)
        assert _count(fresh_database, "gc-0") + _count(fresh_database, "gc-1") == 60
        assert all(n >= 1 for n in durable)
        assert 1 <= spy.call_count < 60  # batched: fewer transactions than rows


@pytest.mark.anyio
async def test_a_refused_row_fails_only_its_own_call(
    make_settings: Callable[..., Settings], fresh_database: str
) -> None:
    async with open_runtime(make_settings(), load_model=False) as runtime:
        writer = AuditGroupCommit(runtime.db)
        good: dict[str, object] = {
            "principals": ["user:alice"],
            "transport": "http",
            "method": "tools/call",
            "target": "gc-good",
            "outcome": "ok",
        }
        bad: dict[str, object] = {
            **good,
            "target": "gc-bad",
            "principals": None,
        }  # NOT NULL refuses it
        results: dict[int, BaseException | None] = {}

        async def one(i: int, row: dict[str, object]) -> None:
            try:
                await writer.write(dict(row))
            except Exception as exc:
                results[i] = exc
            else:
                results[i] = None

        async with anyio.create_task_group() as tg:
            for i in range(9):
                tg.start_soon(one, i, bad if i == 4 else good)
    assert results[4] is not None
    assert all(results[i] is None for i in range(9) if i != 4)
    assert _count(fresh_database, "gc-good") == 8
    assert _count(fresh_database, "gc-bad") == 0


@pytest.mark.anyio
async def test_one_call_at_a_time_is_written_at_once(
    make_settings: Callable[..., Settings], fresh_database: str
) -> None:
    async with open_runtime(make_settings(), load_model=False) as runtime:
        for i in range(3):
            async with runtime.audit.call(ALICE, method="tools/call", target="gc-seq"):
                pass
            assert _count(fresh_database, "gc-seq") == i + 1


@pytest.mark.anyio
async def test_a_stopped_writer_fails_its_waiting_calls_instead_of_hanging() -> None:
    never = anyio.Event()

    async def stuck(self: AuditGroupCommit, rows: list[dict[str, object]]) -> None:
        await never.wait()

    writer = AuditGroupCommit(cast(Database, None))
    with mock.patch.object(AuditGroupCommit, "_insert", stuck):
        outcome: list[BaseException | None] = []

        async def call() -> None:
            try:
                await writer.write({"target": "gc-stuck"})
            except Exception as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            tg.start_soon(call)
            await anyio.sleep(0.05)
            assert writer._writer is not None
            writer._writer.cancel()  # the event loop shutting down, say
    assert len(outcome) == 2 and all(isinstance(e, RuntimeError) for e in outcome)
