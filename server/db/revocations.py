"""Every transaction that writes documents or chunks, or drops a source, says so at commit.

Read replicas (``server/db/replicas.py``) must never serve a row as it was before an
ingestion narrowed its ACL or deleted it. Rather than trusting each write path to
remember a NOTIFY (ingestion has several: replace, re-place, reauthorize, delete, drop a
source), every engine of the primary watches its own statements: a transaction that ran
an INSERT, UPDATE or DELETE on documents or chunks, or deleted a source, sends
``pg_notify('kb_documents')`` just before it commits, inside the transaction, so
listeners hear it only if it commits.
A false positive costs a notification; a missed write path cannot happen by omission.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

DOCUMENTS_CHANNEL = "kb_documents"

_TABLE = r"(?:\"?public\"?\.)?\"?"
# Rows that carry what authorization reads (documents, chunks), and dropping a source (its
# documents go by cascade). Other writes to sources (sync cursors, parse markers, once per
# file) revoke nothing: switching a source off notifies kb_policy already.
_WRITES = re.compile(
    rf"\b(?:(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+{_TABLE}(?:documents|chunks)"
    rf"|DELETE\s+FROM\s+{_TABLE}sources)\b",
    re.IGNORECASE,
)
_FLAG = "kb_writes_documents"
_NOTIFY = f"SELECT pg_notify('{DOCUMENTS_CHANNEL}', '')"


def _seen(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    # A statement that starts with SELECT cannot write a table (data-modifying CTEs start
    # with WITH), so the reads of every search skip the pattern scan.
    if statement.lstrip()[:6].upper() != "SELECT" and _WRITES.search(statement):
        conn.info[_FLAG] = True


def _announce(conn: Connection) -> None:
    if conn.info.pop(_FLAG, False):
        # On the DBAPI connection: still inside the transaction that is about to commit,
        # without re-entering SQLAlchemy's own execution (and its events) from an event.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_NOTIFY)
        finally:
            cursor.close()


def _forget(conn: Connection) -> None:
    conn.info.pop(_FLAG, None)


def announce_document_writes(engine: Engine) -> None:
    """Make ``engine`` (sync, or an async engine's ``sync_engine``) notify at commit."""
    event.listen(engine, "after_cursor_execute", _seen)
    event.listen(engine, "commit", _announce)
    event.listen(engine, "rollback", _forget)


__all__ = ["DOCUMENTS_CHANNEL", "announce_document_writes"]
