"""Pooled connections are checked without a round trip unless they may have died.

The attack: the server ends a pooled connection's backend while it sits idle (what a
restart, ``pg_terminate_backend`` or ``idle_session_timeout`` do). The next call must get
a working connection, not an error, although nothing pinged it on the way in.
"""

from __future__ import annotations

import select
import socket
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.errors import DatabaseUnavailable
from server.db.embedded import EmbeddedPostgres
from server.db.engine import DatabaseTarget, make_async_engine_at, make_sync_engine
from server.db.liveness import has_unread_input, needs_ping, socket_of
from server.settings import Settings

pytestmark = pytest.mark.anyio


def _terminate(admin_url: str, pid: int) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        ended = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert ended == (True,)


def _wait_until_readable(raw: Any) -> None:
    """The backend's goodbye reaches the client's socket a moment after it is sent."""
    fd = socket_of(raw)
    assert fd is not None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(5000), "the ended backend's socket never turned readable"


def _spy_pings(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> list[object]:
    pings: list[object] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


async def _pid_and_raw(engine: AsyncEngine) -> tuple[int, Any]:
    async with engine.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        raw = (await conn.get_raw_connection()).driver_connection
    return int(pid), raw


async def test_a_backend_ended_while_idle_is_replaced_not_failed(
    fresh_database: str, db_target: DatabaseTarget
) -> None:
    settings = Settings(database={"url": fresh_database, "pool_size": 1, "max_overflow": 0})
    url = db_target.runtime_url
    watched = make_async_engine_at(url, settings)
    # The control: the same pool with neither pre-ping nor the watch fails the next call,
    # so the scenario below really leaves a dead connection in the pool.
    unwatched = create_async_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    try:
        ended = {}
        for engine in (watched, unwatched):
            pid, raw = await _pid_and_raw(engine)
            _terminate(fresh_database, pid)
            _wait_until_readable(raw)
            ended[engine] = pid

        new_pid, _ = await _pid_and_raw(watched)
        assert new_pid != ended[watched]  # a new backend, and no error on the way
        with pytest.raises(OperationalError, match="terminat|closed"):
            await _pid_and_raw(unwatched)
    finally:
        await watched.dispose()
        await unwatched.dispose()


async def test_a_connection_used_just_now_is_not_pinged(
    fresh_database: str, db_target: DatabaseTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database={"url": fresh_database, "pool_size": 1, "max_overflow": 0})
    engine = make_async_engine_at(db_target.runtime_url, settings)
    pings = _spy_pings(monkeypatch, engine.sync_engine)
    try:
        first, _ = await _pid_and_raw(engine)
        for _ in range(5):
            again, _ = await _pid_and_raw(engine)
            assert again == first  # the same pooled connection each time
        assert pings == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("ping_after_idle_s", [0.0, 0.2])
async def test_idle_connections_are_still_pinged(
    fresh_database: str,
    db_target: DatabaseTarget,
    monkeypatch: pytest.MonkeyPatch,
    ping_after_idle_s: float,
) -> None:
    """0 pings every checkout (the old pre-ping); otherwise past the idle bound only."""
    settings = Settings(
        database={
            "url": fresh_database,
            "pool_size": 1,
            "max_overflow": 0,
            "ping_after_idle_s": ping_after_idle_s,
        }
    )
    engine = make_async_engine_at(db_target.runtime_url, settings)
    pings = _spy_pings(monkeypatch, engine.sync_engine)
    try:
        await _pid_and_raw(engine)  # a new connection: never pinged
        await _pid_and_raw(engine)
        assert len(pings) == (1 if ping_after_idle_s == 0 else 0)
        await anyio.sleep(0.3)
        await _pid_and_raw(engine)
        assert len(pings) == (2 if ping_after_idle_s == 0 else 1)
    finally:
        await engine.dispose()


def test_the_sync_engine_replaces_an_ended_backend_too(
    fresh_database: str, db_target: DatabaseTarget
) -> None:
    settings = Settings(database={"url": fresh_database})
    engine = make_sync_engine(db_target, settings)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            raw = conn.connection.driver_connection
        _terminate(fresh_database, pid)
        _wait_until_readable(raw)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


async def test_a_database_that_stays_down_still_fails_clearly(
    fresh_database: str, db_target: DatabaseTarget, pg_server: EmbeddedPostgres
) -> None:
    """The watch replaces dead connections; it cannot invent a server that refuses them."""
    name = str(conninfo_to_dict(fresh_database)["dbname"])
    settings = Settings(database={"url": fresh_database, "connect_timeout_s": 2})
    engine = make_async_engine_at(db_target.runtime_url, settings)
    try:
        _, raw = await _pid_and_raw(engine)
        with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        _wait_until_readable(raw)
        with pytest.raises(DatabaseUnavailable):
            await _pid_and_raw(engine)
    finally:
        with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await engine.dispose()


def test_unread_input_is_what_asks_for_a_ping() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert needs_ping(ours, idle_s=0.0, ping_after_idle_s=10) == "no socket to look at"
        assert not has_unread_input(ours.fileno())
        theirs.sendall(b"E")  # a message arrived while idle
        assert has_unread_input(ours.fileno())
        ours.recv(1)
        assert not has_unread_input(ours.fileno())
        theirs.close()  # the peer hung up
        assert has_unread_input(ours.fileno())
    finally:
        ours.close()
    assert needs_ping(object(), idle_s=11.0, ping_after_idle_s=10) == "idle for 11.0 s"
    assert needs_ping(object(), idle_s=0.0, ping_after_idle_s=0) == "every checkout is pinged"
