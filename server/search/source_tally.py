"""list_sources' counts together with the snapshot they were counted in, and bringing such
a count up to date from the documents change log instead of counting again.

The full count is one GROUP BY over every live document the caller may read: 100-260 ms
for broad callers at 250,000 documents. Every write of a ``documents`` row that changes
what a count could see adds rows to ``document_changes`` (migration 0011: ``-1`` with the
old attributes, ``+1`` with the new, stamped with the writing transaction's id). So a count
taken in snapshot S becomes the count of a later snapshot T by adding the log rows of the
transactions S did not see (and T does), under the caller's own predicate: the same SQL
as the full count, applied to the same columns. Both statements read their snapshot inside
the statement itself (``pg_current_snapshot()`` is the statement's snapshot), so the
counts and the snapshot recorded with them always agree.

A count is brought forward only from a snapshot that saw nothing the new one does not
(on one server snapshots only grow; across read replicas a count taken on one that had
replayed more would otherwise have some changes counted twice). Only counts of an *exact*
filter are brought forward: a filter whose SQL predicate is not
exact is counted by re-checking every row in Python (``repository.count_rechecked_documents``),
and so is recounted. Any doubt (log pruned past the snapshot, a count that would go
negative) means a full count: a wrong count would reveal that a document exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Text, cast, func, literal, not_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import UserDefinedType

from policies.access import AccessFilter, AuthzColumns
from server.db.models import DocumentChange
from server.search import repository as repo

log = logging.getLogger(__name__)

Counts = Mapping[tuple[str, str], int]  # (source, collection) -> live documents, all > 0

_CHANGE_COLUMNS = AuthzColumns(
    document_id=DocumentChange.document_id,
    source=DocumentChange.source,
    collection=DocumentChange.collection,
    path=DocumentChange.path,
    level=DocumentChange.level,
    acl=DocumentChange.acl,
    content_type=DocumentChange.content_type,
    metadata=DocumentChange.metadata_,
)


@dataclass(frozen=True)
class Tally:
    """What the caller may read, per (source, collection), as of ``snapshot`` (the text of
    a ``pg_snapshot``; None when the count cannot be brought forward)."""

    counts: Counts
    snapshot: str | None


async def count(session: AsyncSession, access: AccessFilter) -> Tally:
    """Count afresh (with the snapshot, for an exact filter)."""
    if not access.exact:
        return Tally(await repo.count_rechecked_documents(session, access), None)
    counted = repo.counts_statement(access).subquery()
    now = select(cast(func.pg_current_snapshot(), Text).label("snapshot")).subquery()
    stmt = select(now.c.snapshot, *counted.c).select_from(now.outerjoin(counted, true()))
    rows = (await session.execute(stmt)).all()
    counts = {(r[1], r[2]): int(r[3]) for r in rows if r[1] is not None}
    return Tally(counts, rows[0][0])


async def bring_forward(session: AsyncSession, access: AccessFilter, old: Tally) -> Tally | None:
    """``old`` brought up to this statement's snapshot, or None when it cannot be (not an
    exact filter, the log pruned past its snapshot, a snapshot that saw a transaction this
    one does not, or a count that does not add up)."""
    if old.snapshot is None or not access.exact:
        return None
    since = cast(literal(old.snapshot, Text), _SNAPSHOT)
    # Usable when nothing the log may have lost is needed (the horizon) and this snapshot
    # sees everything the old one saw. The second holds on one server, whose snapshots
    # only grow; across read replicas a count may have been taken on one that had
    # replayed more than the one asked now, and its changes would be counted twice.
    horizon = (
        text(
            "SELECT pg_current_snapshot()::text AS snapshot, "
            "pg_snapshot_xmin(CAST(:since AS pg_snapshot)) >= h.horizon "
            "AND pg_snapshot_xmax(pg_current_snapshot()) "
            ">= pg_snapshot_xmax(CAST(:since AS pg_snapshot)) "
            "AND NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot()) AS r(xid) "
            "WHERE pg_visible_in_snapshot(r.xid, CAST(:since AS pg_snapshot))) AS usable "
            "FROM document_changes_horizon h WHERE h.id"
        )
        .bindparams(since=old.snapshot)
        .columns(snapshot=Text, usable=Boolean)
        .subquery("horizon")
    )
    moved = (
        select(
            DocumentChange.source,
            DocumentChange.collection,
            func.sum(DocumentChange.delta).label("delta"),
        )
        .where(
            # Rows below the old snapshot's xmin were all visible to it: the index bound.
            DocumentChange.xid >= func.pg_snapshot_xmin(since),
            not_(func.pg_visible_in_snapshot(DocumentChange.xid, since)),
            access.where(_CHANGE_COLUMNS),
        )
        .group_by(DocumentChange.source, DocumentChange.collection)
        .subquery()
    )
    stmt = select(horizon.c.snapshot, horizon.c.usable, *moved.c).select_from(
        horizon.outerjoin(moved, horizon.c.usable)
    )
    rows = (await session.execute(stmt)).all()
    if not rows or not rows[0].usable:
        return None
    counts = dict(old.counts)
    for r in rows:
        if r.source is None:
            continue
        key = (r.source, r.collection)
        n = counts.get(key, 0) + int(r.delta)
        if n < 0:
            log.warning("list_sources count of %s/%s went negative (%d): counting afresh", *key, n)
            return None
        if n:
            counts[key] = n
        else:
            counts.pop(key, None)
    return Tally(counts, rows[0].snapshot)


class _PgSnapshot(UserDefinedType[str]):
    """``pg_snapshot``, as a cast target."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_snapshot"


_SNAPSHOT = _PgSnapshot()

__all__ = ["Counts", "Tally", "bring_forward", "count"]
