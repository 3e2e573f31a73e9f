"""Watchers: sources with ``watch: true`` followed continuously by ``kb worker``.

Each worker starts one :class:`SourceWatcher` per watched source; of all workers, exactly
one watches a given source at a time. The holder is whoever owns a session-level Postgres
advisory lock (``kb.watch:<source>``) on a connection of its own: when the holder dies,
even by ``kill -9``, its connection closes, Postgres frees the lock at once, and another
worker's next attempt (every :data:`LOCK_RETRY_S`) takes over. A new holder starts with a
catch-up sync from the stored cursor (with a full deletion scan), so a change made while
nobody watched is applied then: none is lost.

* files: filesystem events (``watchfiles``: inotify on Linux), gathered for
  ``watch_debounce_ms`` while they keep coming, then one incremental sync. Events that
  arrive during a sync are queued by the watcher and start the next one; the sync itself
  compares every file with the stored cursor, so nothing depends on an event's detail.
* sql: every ``watch_interval_seconds`` a probe (count, key checksum, highest updated_at
  per entry; :mod:`connectors.sql_watch`). Unchanged: nothing more. Changed: an
  incremental sync, with the deletion scan only when the count or checksum moved, plus a
  full pass every ``watch_full_scan_seconds``.

Syncs go through :func:`server.ingest.service.run_sync` like every other door, so a watched
change is parsed, hashed, authorized and recorded (trigger ``watch``) exactly as a
scheduled one; a run already in progress makes the watcher wait and try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import watchfiles
from sqlalchemy import Engine

from connectors.config import SourceConfigBase
from connectors.files import FilesConnector
from connectors.files_config import FilesSourceConfig
from connectors.sql import SqlConnector
from connectors.sql_config import SqlSourceConfig
from connectors.sql_watch import EntryProbe
from server.db.engine import DatabaseTarget
from server.embeddings.base import Embedder
from server.ingest import freshness, repository, runs
from server.ingest.service import SyncBusy, SyncResult, run_sync
from server.ingest.sources import open_connector, parse_config, upsert_configured_sources
from server.settings import Settings

log = logging.getLogger(__name__)

LOCK_NAMESPACE = "kb.watch:"
LOCK_RETRY_S = 5.0  # a dead holder's source is taken over within about this long
HEARTBEAT_S = 5.0  # the lock connection is checked (and the poll time recorded) this often
BUSY_RETRY_S = 0.5  # another run of the source is in progress: try again after this
ERROR_BACKOFF_S = 5.0


def watched_sources(settings: Settings, engine: Engine) -> list[SourceConfigBase]:
    """Enabled sources with ``watch: true``: the configuration file's, then stored ones."""
    found = [s for s in settings.sources if s.enabled and s.watch]
    configured = {s.name for s in settings.sources}
    with engine.connect() as conn:
        rows = repository.list_sources(conn)
    for row in rows:
        if row.name in configured or row.origin == "config" or not row.enabled:
            continue
        config = parse_config(row.config)
        if config.watch:
            found.append(config)
    return [s for s in found if isinstance(s, FilesSourceConfig | SqlSourceConfig)]


class WatchSet:
    """The watchers of one worker process."""

    def __init__(
        self,
        settings: Settings,
        target: DatabaseTarget,
        engine: Engine,
        embedder: Embedder,
        worker: str,
        sources: list[SourceConfigBase],
    ) -> None:
        self.watchers = [
            SourceWatcher(settings, target, engine, embedder, worker, s) for s in sources
        ]

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(w.run(stop) for w in self.watchers))


class SourceWatcher:
    """Competes for one source's watch lock, and follows the source while it holds it."""

    def __init__(
        self,
        settings: Settings,
        target: DatabaseTarget,
        engine: Engine,
        embedder: Embedder,
        worker: str,
        config: SourceConfigBase,
    ) -> None:
        self.settings = settings
        self.target = target
        self.engine = engine
        self.embedder = embedder
        self.worker = worker
        self.config = config
        self.name = config.name
        self.holding = False  # for tests and logs: this process watches the source now

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lock = await self._take_lock()
            if lock is None:
                await _wait(stop, LOCK_RETRY_S)
                continue
            self.holding = True
            log.info("worker %s watches source %s", self.worker, self.name)
            try:
                await asyncio.to_thread(self._record_holder, self.worker)
                if isinstance(self.config, FilesSourceConfig):
                    await self._watch_files(lock, stop)
                elif isinstance(self.config, SqlSourceConfig):
                    await self._watch_sql(lock, stop, self.config)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watch of source %s stopped: %s; retrying", self.name, _short(exc))
                await _wait(stop, ERROR_BACKOFF_S)
            finally:
                self.holding = False
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._release_holder)
                with contextlib.suppress(Exception):
                    await lock.close()  # closing the session frees the advisory lock

    # -- the lock ---------------------------------------------------------------------------

    async def _take_lock(self) -> psycopg.AsyncConnection[Any] | None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.target.dsn, autocommit=True, application_name="kb-watch"
            )
        except psycopg.Error as exc:
            log.warning("watch of %s: cannot reach the database: %s", self.name, _short(exc))
            return None
        try:
            cur = await conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                (LOCK_NAMESPACE + self.name,),
            )
            row = await cur.fetchone()
        except psycopg.Error:
            await conn.close()
            return None
        if not row or not row[0]:
            await conn.close()
            return None
        return conn

    @staticmethod
    async def _still_held(lock: psycopg.AsyncConnection[Any]) -> None:
        """Raises when the lock's connection is gone (and with it, the lock)."""
        await lock.execute("SELECT 1")

    def _record_holder(self, watcher: str | None) -> None:
        with self.engine.begin() as conn:
            upsert_configured_sources(conn, self.settings)  # a first run creates the row
            freshness.record_watcher(conn, self.name, watcher)
            if watcher is not None:
                failed = runs.fail_orphaned_watch_runs(conn, self.name, worker=watcher)
                if failed:
                    log.warning(
                        "source %s: runs %s of a dead watcher marked failed", self.name, failed
                    )

    def _release_holder(self) -> None:
        with self.engine.begin() as conn:
            freshness.release_watcher(conn, self.name, self.worker)

    def _record_poll(self, full_scan: bool = False) -> None:
        with self.engine.begin() as conn:
            freshness.record_poll(conn, self.name, full_scan=full_scan)

    # -- syncing ----------------------------------------------------------------------------

    async def _sync(
        self, stop: asyncio.Event, *, scan: bool, change_at: datetime | None
    ) -> SyncResult | None:
        """One run (trigger ``watch``); waits while another run of the source is going."""
        while not stop.is_set():
            try:
                return await asyncio.to_thread(
                    run_sync,
                    self.settings,
                    self.engine,
                    self.embedder,
                    self.name,
                    trigger="watch",
                    worker=self.worker,
                    scan_deletions=scan,
                    change_seen_at=change_at,
                    latency_first=change_at is not None,
                )
            except SyncBusy:
                await _wait(stop, BUSY_RETRY_S)
        return None

    # -- files ------------------------------------------------------------------------------

    async def _watch_files(self, lock: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        assert isinstance(self.config, FilesSourceConfig)
        connector = open_connector(self.config, self.settings)
        assert isinstance(connector, FilesConnector)
        root = connector.root
        connector.close()
        # A new holder first applies whatever changed while nobody watched; the events
        # queue from the first iteration on, which syncs once more, so a change made
        # between the two is not missed either.
        await self._sync(stop, scan=True, change_at=None)
        events = watchfiles.awatch(
            root,
            watch_filter=None,
            debounce=self.config.watch_debounce_ms,
            step=min(50, self.config.watch_debounce_ms),
            stop_event=stop,
            rust_timeout=int(HEARTBEAT_S * 1000),
            yield_on_timeout=True,
        )
        pending: datetime | None = None
        caught_up = False
        last_beat = 0.0
        async for changes in events:
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                await self._still_held(lock)
                await asyncio.to_thread(self._record_poll)
                last_beat = time.monotonic()
            if changes:
                seen = _change_time(changes)
                pending = seen if pending is None else min(pending, seen)
            if not caught_up and pending is None:
                await self._sync(stop, scan=True, change_at=None)
            caught_up = True
            if pending is None:
                continue
            try:
                await self._sync(stop, scan=True, change_at=pending)
                pending = None
            except Exception as exc:
                log.warning("watched sync of %s failed: %s; retrying", self.name, _short(exc))
                await _wait(stop, ERROR_BACKOFF_S)

    # -- sql --------------------------------------------------------------------------------

    async def _watch_sql(
        self, lock: psycopg.AsyncConnection[Any], stop: asyncio.Event, config: SqlSourceConfig
    ) -> None:
        connector = open_connector(config, self.settings)
        assert isinstance(connector, SqlConnector)
        try:
            # Probe first: a change made during the catch-up shows in the next probe.
            last = await asyncio.to_thread(connector.probe)
            probed_at = datetime.now(UTC)
            await self._sync(stop, scan=True, change_at=None)
            await asyncio.to_thread(self._record_poll, True)
            last_full = time.monotonic()
            while not stop.is_set():
                await _wait(stop, config.watch_interval_seconds)
                if stop.is_set():
                    return
                await self._still_held(lock)
                now = await asyncio.to_thread(connector.probe)
                now_at = datetime.now(UTC)
                due = time.monotonic() - last_full >= config.watch_full_scan_seconds
                changed = [k for k, p in now.items() if not p.same_state(last.get(k))]
                if not changed and not due:
                    await asyncio.to_thread(self._record_poll)
                    probed_at = now_at
                    continue
                keys = due or any(now[k].keys_changed(last.get(k)) for k in changed)
                change_at = _sql_change_time(now, last, changed, now_at, probed_at)
                try:
                    await self._sync(stop, scan=keys, change_at=change_at if changed else None)
                except Exception as exc:
                    # ``last`` stays: the next probe still differs, and the sync is retried.
                    log.warning("watched sync of %s failed: %s", self.name, _short(exc))
                    continue
                await asyncio.to_thread(self._record_poll, keys)
                last, probed_at = now, now_at
                if keys:
                    last_full = time.monotonic()
        finally:
            connector.close()


def _change_time(changes: set[tuple[watchfiles.Change, str]]) -> datetime:
    """When the changed files changed: their newest modification time, but never later
    than now nor earlier than a minute ago (a copied file keeps its old time)."""
    now = time.time()
    times = []
    for _, path in changes:
        with contextlib.suppress(OSError):
            times.append(Path(path).stat().st_mtime)
    seen = max(times) if times else now
    seen = min(now, max(seen, now - 60.0))
    return datetime.fromtimestamp(seen, tz=UTC)


def _sql_change_time(
    now: dict[str, EntryProbe],
    last: dict[str, EntryProbe],
    changed: list[str],
    now_at: datetime,
    probed_at: datetime,
) -> datetime:
    """The source's own dating of the change (its clock minus the newest row's age) when an
    updated_at moved; for a deletion, the previous probe (the latest it can have been)."""
    ages = [
        now[k].age_seconds
        for k in changed
        if now[k].age_seconds is not None and now[k].highest != (last.get(k) or now[k]).highest
    ]
    if ages:
        moment = now_at - timedelta(seconds=min(a for a in ages if a is not None))
        return max(moment, probed_at - timedelta(seconds=60))
    return probed_at


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}"[:300] if text else exc.__class__.__name__


__all__ = ["LOCK_NAMESPACE", "SourceWatcher", "WatchSet", "watched_sources"]
