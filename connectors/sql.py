"""The ``sql`` connector: rows of tables or read-only queries, one document per row.

Any SQLAlchemy URL works. Tested drivers: PyMySQL for MySQL/MariaDB
(``mysql+pymysql://``), psycopg for PostgreSQL (``postgresql+psycopg://``) and the
standard library for SQLite (``sqlite:///path.db``). SQL Server works through python-tds:
install the ``sqlalchemy-pytds`` dialect package and use ``mssql+pytds://user:${PW}@host/db``
(see :mod:`connectors.sql_session` for what read-only means there).

Reads are paged by primary key (keyset pagination, ``batch_size`` rows a page), each page
in its own short read-only transaction with lock and statement timeouts, so a sync never
holds a lock on the source between pages and no table is ever held in memory; queries must
pass :mod:`connectors.sql_guard`.

Incremental polls: with ``updated_at``, a poll reads rows with ``updated_at >= cursor -
lookback_seconds`` (and rows whose ``updated_at`` is NULL); the pipeline skips unchanged
ones by content hash. The next cursor is the highest ``updated_at`` at the time of the poll,
read before the rows are streamed, so a row committed during the stream is read again next
time rather than missed. Without ``updated_at`` every poll reads all rows. Changing an
entry's configuration makes the next poll read all of its rows.

Rows that change while a run pages through a table: each key is visited at most once per
pass (no duplicates); after the pages, a catch-up pass re-reads rows whose ``updated_at``
reached the highest value seen before the first page, so inserts behind the position and
updates to rows already read land in the same run. Without ``updated_at`` they land in the
next run.

Deletions: ``scan_ids`` pages through the primary keys of every entry. A watched source
asks :meth:`SqlConnector.probe` first (count, key checksum, highest ``updated_at``; see
:mod:`connectors.sql_watch`) and scans the keys only when they disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import FromClause, Select

from connectors.base import ConnectorContext, Item
from connectors.config import SourceConfigBase
from connectors.sql_config import SqlEntryConfig, SqlSourceConfig
from connectors.sql_cursor import encode_position, lookback_bound
from connectors.sql_guard import UnsafeQuery, check_select
from connectors.sql_rows import RowRenderer, entry_fingerprint, external_id
from connectors.sql_session import SqlSession
from connectors.sql_watch import EntryProbe, probe_entry
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
        # Called after each page's transaction ended (entry name, rows): the point where
        # the source is not locked by this connector. Tests change the source here.
        self.between_pages: Callable[[str, int], None] | None = None
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
        catch_up: _Plan = []
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
                highest = conn.execute(
                    sa.select(sa.func.max(_source(entry).c[entry.updated_at]))
                ).scalar()
                plan.append((entry, since))
                if highest is not None:
                    # Catch-up: rows changed while the pages were read (behind the keyset
                    # position, or already read) carry an updated_at >= the highest value seen
                    # before the first page, so one more pass over them ends the run equal to
                    # the source (the pipeline skips unchanged rows by content hash).
                    catch_up.append((entry, highest))
                position = encode_position(highest)
                if position is None and before is not None:
                    position = {k: v for k, v in before.items() if k != "config"}
                positions[entry.entry_name].update(position or {})
        return self._stream([*plan, *catch_up]), {"entries": positions}

    def scan_ids(self) -> set[str]:
        ids: set[str] = set()
        for entry in self.config.tables:
            for row in self._pages(entry, None, keys_only=True):
                ids.add(external_id(entry, tuple(row)))
        return ids

    def probe(self) -> dict[str, EntryProbe]:
        """Per entry: row count, key checksum and highest updated_at (see sql_watch)."""
        with self._session.read_only() as conn, self._session.errors("read"):
            return {
                entry.entry_name: probe_entry(conn, entry, _source(entry))
                for entry in self.config.tables
            }

    def close(self) -> None:
        self._session.dispose()

    # -- reading --------------------------------------------------------------------------

    def _stream(self, plan: _Plan) -> Iterator[Item]:
        for entry, since in plan:
            renderer = RowRenderer(self.config, entry, self._session.locator)
            for row in self._pages(entry, since):
                yield renderer.render(row._mapping)

    def _pages(
        self, entry: SqlEntryConfig, since: Any | None, *, keys_only: bool = False
    ) -> Iterator[Row[Any]]:
        """Rows of ``entry`` in primary-key order, ``batch_size`` per page, each page read in
        its own short read-only transaction and fully fetched before it is handed on.

        The whole-run transaction of a streamed cursor held the table's metadata lock for
        the sync (a RENAME or ALTER then waited, and every query behind it); here the lock
        lives for one page's query, whatever the pipeline does with the rows. Keyset
        pagination (``WHERE key > last key``) visits every key at most once, so no row is
        read twice when rows change between pages. Rows with a NULL key cannot be
        addressed and are skipped (they cannot be stored under an id either)."""
        source = _source(entry)
        keys = [source.c[c] for c in entry.primary_key]
        columns = keys if keys_only else [source.c[c] for c in entry.required_columns()]
        base = sa.select(*columns).where(*[k.is_not(None) for k in keys])
        if since is not None and entry.updated_at is not None:
            updated = source.c[entry.updated_at]
            base = base.where(sa.or_(updated >= sa.bindparam("since", since), updated.is_(None)))
        base = base.order_by(*keys).limit(self.config.batch_size)
        after: tuple[Any, ...] | None = None
        while True:
            stmt = base if after is None else base.where(_after(keys, after))
            with self._session.read_only() as conn, self._session.errors("read"):
                rows = conn.execute(stmt).all()
            if self.between_pages is not None:
                self.between_pages(entry.entry_name, len(rows))
            yield from rows
            if len(rows) < self.config.batch_size:
                return
            last = rows[-1]._mapping
            after = tuple(last[c] for c in entry.primary_key)

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


def _after(keys: list[Any], values: tuple[Any, ...]) -> sa.ColumnElement[bool]:
    """``(k1, k2, ...) > (v1, v2, ...)`` spelled out, since SQL Server has no row values:
    k1 > v1 OR (k1 = v1 AND k2 > v2) OR ..."""
    terms = []
    for i, key in enumerate(keys):
        equal = [keys[j] == values[j] for j in range(i)]
        terms.append(sa.and_(*equal, key > values[i]))
    return sa.or_(*terms)


def _describe(entry: SqlEntryConfig) -> str:
    return f"table {entry.table!r}" if entry.table else f"query {entry.entry_name!r}"


__all__ = ["SqlConnector", "SqlEntryConfig", "SqlSourceConfig"]
