"""The cheap question a watched SQL source is asked every few seconds: did anything change?

One aggregate query per entry returns the row count, a checksum of the primary keys (an
order-independent sum of a hash of each key) and the highest ``updated_at``, together with
the source's own clock. The watcher compares it with the previous answer:

* all equal: nothing to do (no rows read, no run recorded);
* only the highest ``updated_at`` moved: rows were updated or inserted; an incremental
  poll reads them, and no deletion scan is needed (count and checksum say no key went);
* the count or the checksum moved: keys came or went; that poll also compares every key
  with the index.

A delete that a later insert hides from the count still moves the checksum. Dialects
without a usable hash function (SQLite, SQL Server) report no checksum: there the count
alone decides, and the periodic full pass (``watch_full_scan_seconds``) catches the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql import FromClause

from connectors.sql_config import SqlEntryConfig


@dataclass(frozen=True)
class EntryProbe:
    """What one entry looks like now; compare two with :meth:`keys_changed` and ``==``."""

    rows: int
    key_checksum: int | None  # None: this dialect has no hash to compute one with
    highest: str | None  # the highest updated_at, as text (None: no column or no rows)
    # Seconds between the highest updated_at and the source's clock now (None: unknown);
    # lets the watcher date the change on the source's own clock, whatever the skew.
    age_seconds: float | None = None

    def keys_changed(self, other: EntryProbe | None) -> bool:
        """Could a key have gone (or come) since ``other``?"""
        return (
            other is None
            or self.rows != other.rows
            or self.key_checksum is None
            or self.key_checksum != other.key_checksum
        )

    def same_state(self, other: EntryProbe | None) -> bool:
        return (
            other is not None
            and self.rows == other.rows
            and self.key_checksum == other.key_checksum
            and self.highest == other.highest
        )


def probe_entry(conn: Connection, entry: SqlEntryConfig, source: FromClause) -> EntryProbe:
    dialect = conn.dialect.name
    keys = [source.c[c] for c in entry.primary_key]
    columns: list[Any] = [sa.func.count()]
    checksum = _key_checksum(dialect, keys)
    columns.append(checksum if checksum is not None else sa.null())
    if entry.updated_at is not None:
        columns.append(sa.func.max(source.c[entry.updated_at]))
    else:
        columns.append(sa.null())
    columns.append(_now(dialect))
    stmt = sa.select(*columns).select_from(source).where(*[k.is_not(None) for k in keys])
    rows, total, highest, now = conn.execute(stmt).one()
    return EntryProbe(
        rows=int(rows or 0),
        key_checksum=int(total) if total is not None else None,
        highest=None if highest is None else str(highest),
        age_seconds=_age(highest, now),
    )


def _key_checksum(dialect: str, keys: list[Any]) -> Any | None:
    """SUM over rows of a 32-bit hash of the key's text: any key that goes or comes moves it
    (up to hash collisions, which the periodic full pass covers)."""
    as_text = [sa.cast(k, sa.String) for k in keys]
    joined = as_text[0] if len(as_text) == 1 else sa.func.concat_ws("\x1f", *as_text)
    if dialect in ("mysql", "mariadb"):
        return sa.func.sum(sa.func.crc32(joined))
    if dialect == "postgresql":
        return sa.func.sum(sa.cast(sa.func.hashtext(joined), sa.BigInteger))
    return None


def _now(dialect: str) -> Any:
    if dialect in ("mysql", "mariadb"):
        return sa.func.now(6)  # microseconds: CURRENT_TIMESTAMP alone is whole seconds
    if dialect == "postgresql":
        return sa.func.clock_timestamp()
    return sa.func.current_timestamp()


def _age(highest: Any, now: Any) -> float | None:
    if not isinstance(highest, datetime) or not isinstance(now, datetime):
        return None
    if (highest.tzinfo is None) != (now.tzinfo is None):
        # timestamp-without-zone column against the server's zoned clock: compare as the
        # server's local wall time (how the column was most likely written).
        now = now.replace(tzinfo=None) if highest.tzinfo is None else now
        highest = highest.replace(tzinfo=None)
    seconds: float = (now - highest).total_seconds()
    return max(0.0, seconds)


__all__ = ["EntryProbe", "probe_entry"]
