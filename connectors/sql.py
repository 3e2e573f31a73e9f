"""The ``sql`` connector: rows of tables or read-only queries, one document per row.

Any SQLAlchemy URL works. Tested drivers: PyMySQL for MySQL/MariaDB
(``mysql+pymysql://``), psycopg for PostgreSQL (``postgresql+psycopg://``) and the
standard library for SQLite (``sqlite:///path.db``). SQL Server works through python-tds:
install the ``sqlalchemy-pytds`` dialect package and use ``mssql+pytds://user:${PW}@host/db``
(see :mod:`connectors.sql_session` for what read-only means there).

Reads are streamed (server-side cursors, ``yield_per``), so no table is ever held in memory;
every read runs in a read-only transaction; queries must pass :mod:`connectors.sql_guard`.

Incremental polls: with ``updated_at``, a poll reads rows with ``updated_at >= cursor -
lookback_seconds`` (and rows whose ``updated_at`` is NULL); the pipeline skips unchanged
ones by content hash. The next cursor is the highest ``updated_at`` at the time of the poll,
read before the rows are streamed, so a row committed during the stream is read again next
time rather than missed. Without ``updated_at`` every poll reads all rows. Changing an
entry's configuration makes the next poll read all of its rows.

Deletions: ``scan_ids`` streams the primary keys of every entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql import FromClause, Select

from connectors.base import ConnectorContext, Item
from connectors.config import SourceConfigBase
from connectors.sql_config import SqlEntryConfig, SqlSourceConfig
from connectors.sql_cursor import encode_position, lookback_bound
from connectors.sql_guard import UnsafeQuery, check_select
from connectors.sql_rows import RowRenderer, entry_fingerprint, external_id
from connectors.sql_session import SqlSession
from core.errors import ConnectorError

# (entry, lower bound on updated_at or None for all rows)
_Plan = list[tuple[SqlEntryConfig, Any | None]]


class SqlConnector:
    """Reads rows from a database. Blocking; the pipeline runs it on a worker thread."""

    kind: ClassVar[str] = "sql"
    config_model: ClassVar[type[SourceConfigBase]] = SqlSourceConfig

    def __init__(self, config: SourceConfigBase, context: ConnectorContext) -> None:
        if not isinstance(config, SqlSourceConfig):
            raise TypeError("SqlConnector needs a SqlSourceConfig")
        self.config = config
        self.context = context
        self._session = SqlSession(
            config,
            context.environ,
            context.base_dir,
            fence=context.fence,
            environ_note=context.environ_note,
        )

    # -- the Connector protocol ----------------------------------------------------------

    def check(self) -> None:
        with self._session.read_only() as conn, self._session.errors("check"):
            for entry in self.config.tables:
                available = self._columns(conn, entry)
                missing = {
                    column: setting
                    for column, setting in entry.required_columns().items()
                    if column not in available
                }
                if missing:
                    what = ", ".join(f"{c!r} (needed by {s})" for c, s in missing.items())
                    raise ConnectorError(f"{_describe(entry)} has no column {what}")

    def full_load(self) -> Iterator[Item]:
        self._session.engine()  # configuration errors surface here, not mid-iteration
        return self._stream([(entry, None) for entry in self.config.tables])

    def poll(self, cursor: Mapping[str, Any] | None) -> tuple[Iterator[Item], Mapping[str, Any]]:
        previous: Mapping[str, Any] = (cursor or {}).get("entries") or {}
        plan: _Plan = []
        positions: dict[str, dict[str, Any]] = {}
        with self._session.read_only() as conn, self._session.errors("read"):
            for entry in self.config.tables:
                fingerprint = entry_fingerprint(self.config, entry)
                before = previous.get(entry.entry_name)
                if not isinstance(before, Mapping) or before.get("config") != fingerprint:
                    before = None  # new entry or changed configuration: read every row
                positions[entry.entry_name] = {"config": fingerprint}
                if entry.updated_at is None:
                    plan.append((entry, None))
                    continue
                since = lookback_bound(before, entry.lookback_seconds) if before else None
                plan.append((entry, since))
                highest = conn.execute(
                    sa.select(sa.func.max(_source(entry).c[entry.updated_at]))
                ).scalar()
                position = encode_position(highest)
                if position is None and before is not None:
                    position = {k: v for k, v in before.items() if k != "config"}
                positions[entry.entry_name].update(position or {})
        return self._stream(plan), {"entries": positions}

    def scan_ids(self) -> set[str]:
        ids: set[str] = set()
        with self._session.read_only() as conn:
            for entry in self.config.tables:
                source = _source(entry)
                stmt = sa.select(*[source.c[c] for c in entry.primary_key])
                for row in self._session.stream(conn, stmt, self.config.batch_size):
                    if not any(v is None for v in row):
                        ids.add(external_id(entry, tuple(row)))
        return ids

    def close(self) -> None:
        self._session.dispose()

    # -- reading --------------------------------------------------------------------------

    def _stream(self, plan: _Plan) -> Iterator[Item]:
        with self._session.read_only() as conn:
            for entry, since in plan:
                renderer = RowRenderer(self.config, entry, self._session.locator)
                stmt = _rows_query(entry, since)
                for row in self._session.stream(conn, stmt, self.config.batch_size):
                    yield renderer.render(row._mapping)

    def _columns(self, conn: Connection, entry: SqlEntryConfig) -> set[str]:
        if entry.table is not None:
            schema, table = _split_table(entry.table)
            inspector = sa.inspect(conn)
            if not inspector.has_table(table, schema=schema):
                raise ConnectorError(f"table {entry.table!r} does not exist")
            return {str(column["name"]) for column in inspector.get_columns(table, schema=schema)}
        try:
            query = check_select(str(entry.query))
        except UnsafeQuery as exc:
            raise ConnectorError(f"query {entry.entry_name!r} refused: {exc}") from None
        probe: Select[Any] = sa.select(sa.literal_column("*")).select_from(
            sa.text(f"({query}) AS kb_probe")
        )
        result = conn.execute(probe.where(sa.false()))
        keys = result.keys()
        columns = {str(key) for key in keys}
        result.close()
        return columns


def _split_table(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def _source(entry: SqlEntryConfig) -> FromClause:
    """The entry's rows as a selectable with exactly the columns the entry reads."""
    columns: list[sa.ColumnClause[Any]] = [sa.column(c) for c in entry.required_columns()]
    if entry.table is not None:
        schema, name = _split_table(entry.table)
        return sa.table(name, *columns, schema=schema)
    query = check_select(str(entry.query))
    return sa.text(query).columns(*columns).subquery("kb_rows")


def _rows_query(entry: SqlEntryConfig, since: Any | None) -> Select[Any]:
    source = _source(entry)
    stmt = sa.select(*[source.c[c] for c in entry.required_columns()])
    if since is not None and entry.updated_at is not None:
        updated = source.c[entry.updated_at]
        stmt = stmt.where(sa.or_(updated >= sa.bindparam("since", since), updated.is_(None)))
    return stmt


def _describe(entry: SqlEntryConfig) -> str:
    return f"table {entry.table!r}" if entry.table else f"query {entry.entry_name!r}"


__all__ = ["SqlConnector", "SqlEntryConfig", "SqlSourceConfig"]
