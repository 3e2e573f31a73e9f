"""Connections to a source database: credentials from the environment, read-only
transactions, and errors that name the problem without the password or the SQL.

Read-only enforcement per dialect, on top of :mod:`connectors.sql_guard`:

* PostgreSQL: ``SET TRANSACTION READ ONLY`` as the first statement of every transaction;
* MySQL / MariaDB: ``START TRANSACTION READ ONLY``;
* SQLite: the file is opened with ``mode=ro`` and ``PRAGMA query_only = ON``;
* SQL Server (``mssql+pytds://user:${PW}@host:1433/db``, driver python-tds through the
  ``sqlalchemy-pytds`` dialect package): no read-only transaction exists, so grant the
  connector's login read-only rights (``db_datareader``); the query guard still applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable

from connectors.path_fence import PathFence
from connectors.sql_config import ENV_REFERENCE, SqlSourceConfig
from core.errors import ConnectorError

log = logging.getLogger(__name__)


def expand_url(
    raw: str,
    environ: Mapping[str, str],
    base_dir: Path,
    *,
    note: str = "",
    expanded: list[str] | None = None,
) -> URL:
    """The URL with ``${VAR}`` references replaced, component by component (so a password
    with '@' or '/' needs no quoting), and a relative SQLite path made absolute.

    Every substituted value is appended to ``expanded`` so error messages can scrub it;
    ``note`` ends the "not set" message (run-time sources see only an allow-list)."""
    url = make_url(raw)

    def expand(value: str | None) -> str | None:
        if value is None:
            return None

        def lookup(match: Any) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConnectorError(
                    f"environment variable {name}, referenced in the source URL, is not set" + note
                )
            if expanded is not None:
                expanded.append(environ[name])
            return environ[name]

        return ENV_REFERENCE.sub(lookup, value)

    query: dict[str, str | Sequence[str]] = {
        k: (expand(v) or "") if isinstance(v, str) else [expand(x) or "" for x in v]
        for k, v in url.query.items()
    }
    url = url.set(
        username=expand(url.username),
        password=expand(str(url.password) if url.password is not None else None),
        host=expand(url.host),
        database=expand(url.database),
        query=query,
    )
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        path = path if path.is_absolute() else base_dir / path
        # mode=ro: never create a missing file, never write; uri=true makes sqlite3 read it.
        url = url.set(
            database=f"file:{quote(str(path), safe='/')}",
            query={**url.query, "mode": "ro", "uri": "true"},
        )
    return url


def sqlite_file(url: URL) -> Path | None:
    """The file of an expanded SQLite URL, or None for other databases and ':memory:'."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(unquote(url.database.removeprefix("file:")))


def locator(url: URL) -> str:
    """``sql://host[:port]/database``: where rows come from, without any credentials."""
    if url.get_backend_name() == "sqlite":
        host = "localhost"
        file = sqlite_file(url)
        database = file.name if file is not None else "memory"
    else:
        host = (url.host or "localhost") + (f":{url.port}" if url.port else "")
        database = url.database or ""
    return f"sql://{quote(host, safe=':')}/{quote(database, safe='')}"


class SqlSession:
    """A lazily created engine for one source; every read goes through ``read_only()``."""

    def __init__(
        self,
        config: SqlSourceConfig,
        environ: Mapping[str, str],
        base_dir: Path,
        *,
        fence: PathFence | None = None,
        environ_note: str = "",
    ):
        self._config = config
        self._environ = environ
        self._base_dir = base_dir
        self._fence = fence
        self._environ_note = environ_note
        self._engine: Engine | None = None
        self._secrets: list[str] = []
        self.locator = ""

    def engine(self) -> Engine:
        if self._engine is None:
            expanded: list[str] = []
            url = expand_url(
                self._config.url,
                self._environ,
                self._base_dir,
                note=self._environ_note,
                expanded=expanded,
            )
            # Any value taken from the environment (host and database included) stays out
            # of messages, longest first so a value inside another is not half-masked.
            secrets = {str(s) for s in (url.password, url.username, *expanded) if s}
            self._secrets = sorted((s for s in secrets if len(s) > 2), key=len, reverse=True)
            file = sqlite_file(url)
            if self._fence is not None and url.get_backend_name() == "sqlite":
                if file is None:
                    raise ConnectorError("an in-memory SQLite database has nothing to read")
                self._fence.check(file, "the SQLite database file")
            self.locator = self._scrub(locator(url))
            if file is not None and not file.is_file():
                raise ConnectorError(f"SQLite database file {file.name!r} does not exist")
            try:
                self._engine = sa.create_engine(
                    url, poolclass=NullPool, connect_args=self._connect_args(url)
                )
            except (SQLAlchemyError, ImportError) as exc:
                raise ConnectorError(
                    f"cannot use the database URL of source {self._config.name!r}: "
                    f"{type(exc).__name__}"
                ) from None
        return self._engine

    def _connect_args(self, url: URL) -> dict[str, Any]:
        timeout = self._config.connect_timeout_seconds
        backend = url.get_backend_name()
        if backend in ("mysql", "mariadb"):
            return {"connect_timeout": timeout}
        if backend == "postgresql":
            return {"connect_timeout": timeout, "application_name": "kb-connector"}
        if backend == "sqlite":
            return {"timeout": timeout}
        if backend == "mssql":
            return {"login_timeout": timeout}
        return {}

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        """A connection inside a read-only transaction, rolled back at the end."""
        engine = self.engine()
        with self.errors("connect"):
            conn = engine.connect()
        try:
            with self.errors("connect"):
                _begin_read_only(conn)
                _set_timeouts(conn, self._config)
            yield conn
        finally:
            try:
                conn.rollback()
                conn.close()
            except SQLAlchemyError:
                conn.invalidate()  # the connection is already gone; nothing to roll back

    @contextmanager
    def errors(self, phase: str) -> Iterator[None]:
        """Translate driver errors into ConnectorError with a safe, specific message."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise ConnectorError(self.describe(exc, phase)) from None

    def stream(self, conn: Connection, stmt: Executable, batch: int) -> Iterator[Row[Any]]:
        """Rows of ``stmt`` fetched ``batch`` at a time through a server-side cursor."""
        with self.errors("read"):
            result = conn.execution_options(yield_per=batch).execute(stmt)
        cursor = result.cursor
        try:
            with self.errors("read"):
                yield from result
        except BaseException:
            _abandon_cursor(cursor)
            raise
        finally:
            with suppress(Exception):
                result.close()

    def describe(self, exc: SQLAlchemyError, phase: str) -> str:
        detail = self._scrub(_driver_message(exc))
        where = f"the database of source {self._config.name!r} ({self.locator})"
        disconnected = isinstance(exc, DBAPIError) and exc.connection_invalidated
        if phase == "connect":
            return f"cannot connect to {where}: {detail}"
        if disconnected or isinstance(exc, sa.exc.OperationalError):
            return f"lost the connection to {where} while reading: {detail}"
        return f"{where} refused a query: {detail}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(str(secret), "***")
        return text

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _begin_read_only(conn: Connection) -> None:
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif name in ("mysql", "mariadb"):
        # An unbuffered stream stalls while the pipeline embeds a batch; the server's default
        # 60 s write timeout would cut it. A session setting, not a write to any data.
        conn.exec_driver_sql("SET SESSION net_write_timeout = 3600")
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _set_timeouts(conn: Connection, config: SqlSourceConfig) -> None:
    """Bound how long a read may wait for a lock and run, so a sync never queues behind a
    migration (and makes every later query on the table queue behind both). Session or
    transaction settings only; nothing is written."""
    name = conn.dialect.name
    lock_s, stmt_s = config.lock_timeout_seconds, config.statement_timeout_seconds
    if name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_s)}s'")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = '{int(stmt_s)}s'")
    elif name in ("mysql", "mariadb"):
        conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(lock_s)}")
        if getattr(conn.dialect, "is_mariadb", False):
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {int(stmt_s)}")
        else:
            conn.exec_driver_sql(f"SET SESSION max_execution_time = {int(stmt_s) * 1000}")


def _abandon_cursor(cursor: Any) -> None:
    """Close a DBAPI cursor whose stream failed or was abandoned, without it raising later.

    PyMySQL's unbuffered cursor drains the rest of its result when closed, and again when
    garbage collected; with the connection gone that raises every time, so the result is
    marked finished first. Other drivers' cursors just close.
    """
    result = getattr(cursor, "_result", None)
    if result is not None and getattr(result, "unbuffered_active", False):
        result.unbuffered_active = False
    with suppress(Exception):
        cursor.close()
    if getattr(cursor, "connection", None) is not None and result is not None:
        cursor.connection = None


def _driver_message(exc: SQLAlchemyError) -> str:
    """The first line of the driver's own message: no SQL text, no SQLAlchemy boilerplate."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc).split("\n[SQL:", 1)[0]
    if orig is not None and type(orig).__name__ == "OperationalError" and orig.args:
        # PyMySQL: (2003, "Can't connect ...") -> the message part.
        text = str(orig.args[-1]) if isinstance(orig.args[-1], str) else text
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line[:300]


__all__ = ["SqlSession", "expand_url", "locator", "sqlite_file"]
