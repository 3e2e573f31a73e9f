"""Audit rows of concurrent reads written together: one INSERT and one commit per batch.

Every read (search, fetch, lists) writes its audit row before its answer is final. Alone,
a row is one INSERT in autocommit on a pooled connection (a statement is its own
transaction: it returns once its commit is flushed, with no BEGIN and COMMIT round trips).
When calls arrive together, the rows queued while one batch is being written go
into the next one: one connection, one multi-row INSERT, one commit for all of them.
Each caller still awaits *its own* row's commit, so no answer goes out before its row is
durable, and a failure reaches every call of the batch that failed.

A batch that fails is retried row by row, each as a lone row, so one row the
database refuses cannot take the other calls' rows down with it (each then fails or
succeeds on its own, as a lone write would). With one call at a time a batch is one row
and nothing waits for anything: the first row of an idle writer is written at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.engine import Database
from server.db.models import AuditEntry

log = logging.getLogger(__name__)

Row = dict[str, Any]


class AuditGroupCommit:
    """Queue rows; one writer task drains the queue in batches of up to ``max_batch``."""

    def __init__(self, db: Database, *, max_batch: int = 200) -> None:
        self._db = db
        self._autocommit: AsyncEngine | None = None
        self._max_batch = max_batch
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def write(self, row: Row) -> None:
        """Return once ``row`` is committed; raise what its write raised."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())
        await done

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        # A new event loop (a CLI command after another): rows still queued belong to a
        # loop that stopped before writing them; their calls are gone, the rows go to the
        # error log as every failed audit write does.
        for row, _ in self._pending:
            log.error("audit write lost with its event loop: %s", json.dumps(row, default=str))
        self._pending = []
        self._writer = None
        self._loop = loop

    async def _drain(self) -> None:
        batch: list[tuple[Row, asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                await self._write_batch(batch)
                batch = []
        except BaseException:
            # Cancelled (the loop is shutting down): every waiting call learns that its row
            # was not written, so the recorder logs the row and applies fail-closed, instead
            # of the call waiting for ever.
            stopped = RuntimeError("the audit writer stopped before writing this row")
            for _, done in [*batch, *self._pending]:
                _settle(done, stopped)
            self._pending = []
            raise

    async def _write_batch(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        try:
            await self._insert([row for row, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning("audit batch of %d rows failed (%s); one by one", len(batch), exc)
            for row, done in batch:
                try:
                    await self._insert([row])
                except Exception as one:
                    _settle(done, one)
                else:
                    _settle(done, None)
            return
        for _, done in batch:
            _settle(done, None)

    async def _insert(self, rows: list[Row]) -> None:
        table = insert(cast(Table, AuditEntry.__table__))
        if len(rows) == 1:
            # One INSERT in autocommit: the statement is its own transaction, as durable
            # when it returns, without a BEGIN and a COMMIT round trip on the critical path
            # of every read at low load (the same pool, the same role).
            if self._autocommit is None:
                self._autocommit = self._db.engine.execution_options(isolation_level="AUTOCOMMIT")
            async with self._autocommit.connect() as conn:
                await conn.execute(table, rows[0])
            return
        # Rows differ in their keys (request_id is absent outside HTTP): one executemany
        # per shape, all in one transaction and one commit.
        shapes: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            shapes.setdefault(tuple(sorted(row)), []).append(row)
        # Core's executemany on the table: the ORM's bulk-insert layer adds nothing here.
        async with self._db.sessions.begin() as session:
            conn = await session.connection()
            for same in shapes.values():
                await conn.execute(table, same)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():  # the waiting call was cancelled; its row was written all the same
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


__all__ = ["AuditGroupCommit"]
