"""How fresh each source is: who watches it, when a change was last seen at the source, and
how long that change took to become searchable.

Written by :func:`server.ingest.service.run_sync` (every run that changed something) and by
the watchers (:mod:`server.jobs.watch`: holder, polls, full passes); read by ``kb sources
list``, ``/admin/sources`` and, through :func:`read_freshness`, by anything that exports
metrics. One row per source in ``source_freshness`` (migration 0006), gone with the source.

* ``last_change_at``: when the latest change applied happened at the source, as well as the
  KB can tell: the source's own clock for a watched SQL source (its highest ``updated_at``,
  aged on the source's clock), the modification time of what changed for a watched folder,
  the start of the run otherwise;
* ``last_searchable_at``: when the run that applied it committed;
* ``lag_seconds``: the difference, only when the change time is known (watched sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.models import SourceFreshness


@dataclass(frozen=True)
class Freshness:
    source: str
    watcher: str | None
    watcher_since: datetime | None
    last_poll_at: datetime | None
    last_change_at: datetime | None
    last_searchable_at: datetime | None
    lag_seconds: float | None
    last_full_scan_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO times), as the CLI and the admin API show it."""
        return {
            "watcher": self.watcher,
            "watcher_since": _iso(self.watcher_since),
            "last_poll_at": _iso(self.last_poll_at),
            "last_change_at": _iso(self.last_change_at),
            "last_searchable_at": _iso(self.last_searchable_at),
            "lag_seconds": round(self.lag_seconds, 3) if self.lag_seconds is not None else None,
            "last_full_scan_at": _iso(self.last_full_scan_at),
        }


def read_freshness(conn: Connection) -> dict[str, Freshness]:
    """Every source's freshness (sources never synced since 0006 have no entry).

    For metrics: ``lag_seconds`` is the last change's change-to-searchable time;
    ``last_change_at`` / ``last_searchable_at`` give the age of the newest change."""
    rows = conn.execute(select(SourceFreshness.__table__)).mappings().all()
    return {
        r["source"]: Freshness(
            source=r["source"],
            watcher=r["watcher"],
            watcher_since=r["watcher_since"],
            last_poll_at=r["last_poll_at"],
            last_change_at=r["last_change_at"],
            last_searchable_at=r["last_searchable_at"],
            lag_seconds=r["last_lag_ms"] / 1000.0 if r["last_lag_ms"] is not None else None,
            last_full_scan_at=r["last_full_scan_at"],
        )
        for r in rows
    }


async def read_freshness_async(conn: AsyncConnection) -> dict[str, Freshness]:
    """:func:`read_freshness` on an async connection (for an event-loop caller)."""
    return await conn.run_sync(read_freshness)


def _upsert(conn: Connection, source: str, **values: Any) -> None:
    values["updated_at"] = func.now()
    stmt = pg_insert(SourceFreshness).values(source=source, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["source"], set_=values))


def record_change(
    conn: Connection, source: str, *, change_at: datetime, searchable_at: datetime, known: bool
) -> None:
    """A run made a change searchable; ``known``: ``change_at`` is when the source changed
    (so the lag means something), not merely when the run started."""
    lag_ms = max(0.0, (searchable_at - change_at).total_seconds() * 1000.0) if known else None
    _upsert(
        conn,
        source,
        last_change_at=change_at,
        last_searchable_at=searchable_at,
        last_lag_ms=lag_ms,
    )


def record_watcher(conn: Connection, source: str, watcher: str | None) -> None:
    """``watcher`` took the source's watch (None: it let go)."""
    _upsert(conn, source, watcher=watcher, watcher_since=func.now() if watcher else None)


def record_poll(conn: Connection, source: str, *, full_scan: bool = False) -> None:
    values: dict[str, Any] = {"last_poll_at": func.now()}
    if full_scan:
        values["last_full_scan_at"] = func.now()
    _upsert(conn, source, **values)


def release_watcher(conn: Connection, source: str, watcher: str) -> None:
    """Clear the holder if it is still ``watcher`` (a successor may have written itself)."""
    conn.execute(
        update(SourceFreshness)
        .where(SourceFreshness.source == source, SourceFreshness.watcher == watcher)
        .values(watcher=None, watcher_since=None, updated_at=func.now())
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


__all__ = [
    "Freshness",
    "read_freshness",
    "read_freshness_async",
    "record_change",
    "record_poll",
    "record_watcher",
    "release_watcher",
]
