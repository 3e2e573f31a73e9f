"""Read replicas: search, fetch and listings read from a streaming replica only when it has
replayed every revocation this process knows of; otherwise from the primary.

Policy evaluation never touches a replica (the policy snapshot is loaded from the primary),
but the rows it filters do: a replica that lags behind an ingestion which tightened a
document's ACL, or deleted it, would still hold the old row and serve it. So the process
keeps a *barrier*, a WAL position of the primary that a replica must have replayed:

* Every change that can revoke access commits with a NOTIFY: ``kb_policy`` (policy
  versions, sources switched off) and ``kb_documents`` (any transaction of the primary's
  engines that wrote documents, chunks or sources: ``server/db/revocations.py``).
  Notifications are delivered after commit, so the primary's
  ``pg_current_wal_insert_lsn()`` read on hearing one is at or past that commit's record.
* On (re)connecting, the barrier becomes the primary's current position: a revocation
  committed while nobody listened is covered too. While the LISTEN connection is down,
  no replica is used at all (fail closed). The insert position can sit just past a page
  header when the last record ended a WAL page; the replica then reaches the barrier only
  with the primary's next WAL record (every read writes an audit row, so soon).
* A replica serves a read when ``pg_last_wal_replay_lsn()`` is at or past the barrier, and
  also past the primary's position ``replica_max_lag_s`` ago (a staleness bound for
  additions, which revoke nothing). Its replay position only grows, so a position read
  earlier is a safe lower bound; it is re-read at most every ``replica_recheck_s`` while it
  is short of what a read needs.

A replica that cannot be reached, or answers as something else (not in recovery, another
cluster's system identifier), is skipped for ``RETRY_AFTER_S`` with one log line; the read
goes to the primary, never to an error. Each replica URL must name one server (not a
balancer over several), since its replay position is cached per URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from core.errors import DatabaseUnavailable
from server.db.engine import (
    Database,
    DatabaseTarget,
    as_runtime_role,
    describe,
    make_async_engine_at,
    to_sqlalchemy_url,
)
from server.db.revocations import DOCUMENTS_CHANNEL
from server.settings import Settings

log = logging.getLogger(__name__)

# How long an unreachable or wrong replica is left alone before it is tried again.
RETRY_AFTER_S = 5.0
# How often the barrier samples the primary's position (for the lag bound) and, by the
# same query, notices a dead LISTEN connection.
SAMPLE_INTERVAL_S = 1.0
APPLICATION_NAME = "kb-read-replica"

Clock = Callable[[], float]


class SessionSource(Protocol):
    """What opens read sessions: the primary :class:`Database` or a :class:`ReadRouter`."""

    def sessions(self) -> AbstractAsyncContextManager[AsyncSession]: ...


def parse_lsn(value: str) -> int:
    """``'16/B374D848'`` -> an integer that orders like the WAL position."""
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class RevocationBarrier:
    """The primary's WAL position every replica read must have replayed (see the module)."""

    def __init__(
        self,
        dsn: str,
        channels: Sequence[str],
        *,
        max_lag_s: float | None,
        sample_interval_s: float = SAMPLE_INTERVAL_S,
        retry_delay_s: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._dsn = dsn
        self.channels = tuple(channels)
        self.max_lag_s = max_lag_s
        self.sample_interval_s = sample_interval_s
        self.retry_delay_s = retry_delay_s
        self._clock = clock
        self._barrier = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        # The primary's cluster identity; a replica must show the same (None: not readable).
        self.system_identifier: int | None = None
        self.heard = 0  # notifications acted on (for tests and diagnostics)

    @property
    def listening(self) -> bool:
        return self._listening

    def required(self) -> int | None:
        """The position a replica must have replayed for a read now; None: use no replica."""
        if not self._listening:
            return None
        return max(self._barrier, self._lag_floor())

    def _lag_floor(self) -> int:
        """The primary's position ``max_lag_s`` ago (the newest sample at least that old)."""
        if self.max_lag_s is None:
            return 0
        horizon = self._clock() - self.max_lag_s
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= horizon:
            samples.popleft()
        return samples[0][1] if samples and samples[0][0] <= horizon else 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kb-replica-barrier")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._listening = False
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        warned = False  # one warning per outage, not one per retry
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: no replica until we listen again
                if self._listening or not warned:
                    log.warning(
                        "read replicas unused: cannot follow the primary's changes (%s)",
                        exc.__class__.__name__,
                    )
                    warned = True
                self._listening = False
                await asyncio.sleep(self.retry_delay_s)

    async def _follow(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
            for channel in self.channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            if self.system_identifier is None:
                self.system_identifier = await _system_identifier(conn)
            # Anything committed before now may be a revocation nobody heard of.
            await self._advance(conn, heard=True)
            self._listening = True
            log.info("read replicas: following revocations from the primary")
            while True:
                heard = False
                # stop_after=1: read the position as soon as one change is heard; others
                # arriving meanwhile wait in psycopg's backlog for the next round.
                notes = conn.notifies(timeout=self.sample_interval_s, stop_after=1)
                async with contextlib.aclosing(notes):
                    async for _ in notes:
                        heard = True
                await self._advance(conn, heard=heard)

    async def _advance(
        self, conn: psycopg.AsyncConnection[tuple[object, ...]], *, heard: bool
    ) -> None:
        cur = await conn.execute("SELECT pg_current_wal_insert_lsn()::text")
        row = await cur.fetchone()
        assert row is not None
        self.observe(parse_lsn(str(row[0])), heard=heard)

    def observe(self, lsn: int, *, heard: bool) -> None:
        """The primary is at ``lsn`` now; ``heard``: after a change notification (or a
        reconnect), so every replica read must have replayed up to here."""
        if heard:
            self._barrier = max(self._barrier, lsn)
            self.heard += 1
        self._samples.append((self._clock(), lsn))


async def _system_identifier(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> int | None:
    try:
        cur = await conn.execute("SELECT system_identifier FROM pg_control_system()")
        row = await cur.fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return None if row is None else int(str(row[0]))


@dataclass(eq=False)
class Replica:
    """One replica URL and what was last seen of it."""

    label: str  # the URL without its password, for logs
    engine: AsyncEngine
    replayed: int = -1  # a lower bound of its replay position
    checked_at: float = float("-inf")
    down_until: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_POSITION = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " (SELECT system_identifier FROM pg_control_system())"
)


class ReadRouter:
    """Sessions for search, fetch and listings: a current replica's, else the primary's."""

    def __init__(
        self,
        primary: Database,
        replicas: Sequence[Replica] = (),
        barrier: RevocationBarrier | None = None,
        *,
        recheck_s: float = 0.2,
        clock: Clock = time.monotonic,
    ) -> None:
        self.primary = primary
        self.replicas = tuple(replicas)
        self.barrier = barrier
        self.recheck_s = recheck_s
        self._clock = clock
        self._turn = itertools.count()
        # Sessions opened per target ("primary" or a replica's label), for diagnostics.
        self.served: Counter[str] = Counter()

    def sessions(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._session()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        replica = await self.choose()
        conn: AsyncConnection | None = None
        if replica is not None:
            try:
                conn = await replica.engine.connect()
            except Exception as exc:
                self._down(replica, exc)
                replica = None
        if replica is None or conn is None:
            self.served["primary"] += 1
            async with self.primary.sessions() as session:
                yield session
            return
        self.served[replica.label] += 1
        try:
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                yield session
        except Exception as exc:
            if isinstance(exc, DatabaseUnavailable):  # lost, or a conflict with replay
                self._down(replica, exc)  # the next reads go elsewhere; this one has failed
            raise
        finally:
            await conn.close()

    async def choose(self) -> Replica | None:
        """A replica that has replayed what a read needs now, or None for the primary."""
        if not self.replicas or self.barrier is None:
            return None
        need = self.barrier.required()
        if need is None:
            return None
        start = next(self._turn)
        for i in range(len(self.replicas)):
            replica = self.replicas[(start + i) % len(self.replicas)]
            now = self._clock()
            if replica.down_until > now:
                continue
            if replica.replayed >= need:
                return replica
            if now - replica.checked_at >= self.recheck_s and not replica.lock.locked():
                await self._check(replica)
                if replica.replayed >= need and replica.down_until <= self._clock():
                    return replica
        return None

    async def _check(self, replica: Replica) -> None:
        async with replica.lock:
            replica.checked_at = self._clock()
            try:
                async with replica.engine.connect() as conn:
                    in_recovery, replayed, system_id = (await conn.execute(_POSITION)).one()
            except Exception as exc:
                self._down(replica, exc)
                return
            expected = self.barrier.system_identifier if self.barrier else None
            if not in_recovery or replayed is None:
                # Promoted, or the primary itself: not a stream we can measure. Fail closed.
                self._down(replica, None, "it is not a standby in recovery")
                return
            if expected is not None and system_id is not None and int(system_id) != expected:
                self._down(replica, None, "it replicates another cluster")
                return
            # Assigned, not maxed: a fresh reading is the truth about this server.
            replica.replayed = parse_lsn(str(replayed))

    def _down(self, replica: Replica, exc: BaseException | None, why: str = "") -> None:
        replica.down_until = self._clock() + RETRY_AFTER_S
        replica.replayed = -1
        reason = why or (exc.__class__.__name__ if exc is not None else "unknown")
        log.warning(
            "read replica %s unused for %.0fs: %s; reading from the primary",
            replica.label,
            RETRY_AFTER_S,
            reason,
        )


@asynccontextmanager
async def open_read_router(
    settings: Settings, target: DatabaseTarget, primary: Database, channels: Sequence[str]
) -> AsyncIterator[ReadRouter]:
    """The router for this process: primary only without ``database.read_replicas``;
    otherwise replica engines (as the runtime role) and a barrier following ``channels``."""
    urls = [to_sqlalchemy_url(u.get_secret_value()) for u in settings.database.read_replicas]
    if not urls:
        yield ReadRouter(primary)
        return
    replicas = [
        Replica(
            describe(url), make_async_engine_at(as_runtime_role(url), settings, APPLICATION_NAME)
        )
        for url in urls
    ]
    barrier = RevocationBarrier(
        target.dsn, [*channels, DOCUMENTS_CHANNEL], max_lag_s=settings.database.replica_max_lag_s
    )
    await barrier.start()
    try:
        yield ReadRouter(primary, replicas, barrier, recheck_s=settings.database.replica_recheck_s)
    finally:
        await barrier.stop()
        for replica in replicas:
            await replica.engine.dispose()


__all__ = [
    "DOCUMENTS_CHANNEL",
    "ReadRouter",
    "Replica",
    "RevocationBarrier",
    "SessionSource",
    "open_read_router",
    "parse_lsn",
]
