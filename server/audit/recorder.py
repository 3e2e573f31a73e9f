"""The one audit mechanism: one row per call, append-only, never silently dropped.

Two shapes, chosen by what the call does:

- **Changes** (:meth:`AuditRecorder.change`): the row is written *in the same database
  transaction as the change*, just before it commits. If the row cannot be written, the
  change rolls back and the call fails (``audit.fail_closed``), so no change exists without
  its row. A change that fails on its own rolls back, and then its failure is recorded in a
  separate short transaction (the change's transaction is gone).
  Services that run on the blocking engine (sources) take :meth:`ChangeScope.write_sync`
  as a hook and call it on their own connection, inside their own transaction.
- **Reads** (:meth:`AuditRecorder.call`): search, fetch, lists and admin reads change
  nothing; their row is written in a short transaction of its own when the call ends,
  shared with the rows of concurrent calls (:mod:`server.audit.group_commit`), and the
  call waits for that commit, so the row is durable before the answer is final (a failed
  write fails a successful call when fail-closed).

Every row passes through :func:`server.audit.scrub.scrub`: NUL characters and lone
surrogates cannot break the insert, credentials are withheld, query text is hashed on
request. When a write fails the whole record goes to the error log, so it is not lost::

    async with runtime.audit.call(caller, method="tools/call", target="search",
                                  arguments={"query": q}) as rec:
        hits = await search(...)
        rec.documents(h.document_id for h in hits)

    async with runtime.audit.change(admin.caller, method="keys.create",
                                    target=name, arguments=scrubbed) as scope:
        new = await keys.create(..., session=scope.session)
        scope.record.result["prefix"] = new.info.prefix
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import (
    AccessDenied,
    AuthError,
    ConfigError,
    ConnectorError,
    DatabaseUnavailable,
    InvalidRequest,
    KBError,
    NotFound,
    PolicyError,
)
from core.identity import Caller
from server.audit.group_commit import AuditGroupCommit
from server.audit.scrub import QUERY_KEYS, clean_text, scrub
from server.db.engine import Database
from server.db.models import AuditEntry
from server.observability.metrics import observe_audited
from server.observability.request_id import current_request_id
from server.settings import AuditSettings

log = logging.getLogger(__name__)

Outcome = Literal["ok", "denied", "not_found", "invalid", "error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "denied", "not_found", "invalid", "error")
AUDIT_UNAVAILABLE = "the audit log cannot be written, so the call was refused"


def outcome_of(exc: BaseException | None) -> Outcome:
    if exc is None:
        return "ok"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, AccessDenied | AuthError):
        return "denied"
    if isinstance(exc, InvalidRequest | ConfigError | ConnectorError | PolicyError):
        return "invalid"
    return "error"


def error_text(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return exc.message if isinstance(exc, KBError) else exc.__class__.__name__


@dataclass
class CallRecord:
    """Filled in by the use case while the call runs; written when it ends."""

    document_ids: list[str] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)
    policy_version: int | None = None
    outcome: Outcome | None = None
    # What the call produced that the row should name (a key prefix, a policy version).
    result: dict[str, Any] = field(default_factory=dict)

    def documents(self, ids: Iterable[object]) -> None:
        self.document_ids.extend(str(i) for i in ids)

    def chunks(self, ids: Iterable[int]) -> None:
        self.chunk_ids.extend(int(i) for i in ids)


@dataclass(frozen=True)
class CallFacts:
    """Who called what, with which (unscrubbed) arguments: fixed when the call starts."""

    caller: Caller | None
    method: str
    target: str | None
    arguments: Mapping[str, Any]
    transport: str
    started: float


class ChangeScope:
    """The transaction of one audited change, and the record to fill in."""

    def __init__(self, recorder: AuditRecorder, facts: CallFacts, session: AsyncSession) -> None:
        self._recorder = recorder
        self._facts = facts
        self.session = session
        self.record = CallRecord()
        self.written = False

    def row(self) -> dict[str, Any]:
        return self._recorder.row_of(self._facts, self.record, None)

    def write_sync(self, conn: Connection) -> None:
        """Write the ok row on a blocking connection, inside the caller's transaction.

        For services on the sync engine: they call it last, before their commit. A failure
        raises, so their transaction rolls back with the change.
        """
        row = self.row()
        try:
            with conn.begin_nested():
                conn.execute(insert(AuditEntry).values(**row))
        except Exception as exc:
            self._recorder.write_failed(row, exc)
            if self._recorder.settings.fail_closed:
                raise DatabaseUnavailable(AUDIT_UNAVAILABLE) from exc
        self.written = True


class AuditRecorder:
    def __init__(self, db: Database, settings: AuditSettings) -> None:
        self.db = db
        self.settings = settings
        # Rows of reads and refusals: concurrent calls share one INSERT and one commit,
        # each still waiting for its own row (server/audit/group_commit.py).
        self._rows = AuditGroupCommit(db)

    # --- rows ---------------------------------------------------------------------------

    def scrub(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments as stored (see :mod:`server.audit.scrub`)."""
        return scrub(arguments, hash_queries=self.settings.query_text == "hash")

    def row_of(
        self, facts: CallFacts, rec: CallRecord, failure: BaseException | None
    ) -> dict[str, Any]:
        arguments = dict(facts.arguments)
        if rec.result and failure is None:
            # What a rolled-back change produced never existed: only ok rows name it.
            arguments["result"] = rec.result
        caller = facts.caller
        return self._row(
            principals=caller.principals if caller else (),
            client_id=caller.client_id if caller else None,
            transport=facts.transport,
            method=facts.method,
            target=facts.target,
            arguments=arguments,
            document_ids=rec.document_ids,
            chunk_ids=rec.chunk_ids,
            policy_version=rec.policy_version,
            outcome=rec.outcome or outcome_of(failure),
            error=error_text(failure),
            latency_ms=(time.perf_counter() - facts.started) * 1000,
        )

    def _row(
        self,
        *,
        principals: Iterable[str],
        transport: str,
        method: str,
        outcome: Outcome,
        client_id: str | None = None,
        target: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        document_ids: Sequence[str] = (),
        chunk_ids: Sequence[int] = (),
        policy_version: int | None = None,
        error: str | None = None,
        latency_ms: float = 0.0,
    ) -> dict[str, Any]:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")

        def text(value: str | None) -> str | None:
            return None if value is None else clean_text(value)

        observe_audited(transport, method, outcome)  # denials and not-found (/metrics)
        row: dict[str, Any] = {
            "principals": sorted(clean_text(p) for p in principals),
            "client_id": text(client_id),
            "transport": clean_text(transport),
            "method": clean_text(method),
            "target": text(target),
            "arguments": self.scrub(arguments or {}),
            "document_ids": [clean_text(d) for d in dict.fromkeys(document_ids)],
            "chunk_ids": list(dict.fromkeys(chunk_ids)),
            "policy_version": policy_version,
            "outcome": outcome,
            "error": text(error),
            "latency_ms": round(latency_ms, 3),
        }
        # The HTTP request's id, as in its log lines. Left out, not NULL, when there is none
        # (CLI actions): `kb backup` of a database older than migration 0005 (the documented
        # backup-before-upgrade path) writes its audit row into a table without the column.
        request_id = current_request_id()
        if request_id is not None:
            row["request_id"] = request_id
        return row

    def write_failed(self, row: Mapping[str, Any], exc: BaseException) -> None:
        # Never silent: the record itself goes to the log either way.
        log.error(
            "audit write failed (%s): %s", exc.__class__.__name__, json.dumps(row, default=str)
        )

    async def _insert_alone(self, row: dict[str, Any]) -> None:
        """One row, committed before this returns (with the rows of concurrent calls);
        DatabaseUnavailable if it fails and fail-closed."""
        try:
            await self._rows.write(row)
        except Exception as exc:
            self.write_failed(row, exc)
            if self.settings.fail_closed:
                raise DatabaseUnavailable(AUDIT_UNAVAILABLE) from exc

    async def record(
        self,
        *,
        principals: Iterable[str],
        transport: str,
        method: str,
        outcome: Outcome,
        client_id: str | None = None,
        target: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        document_ids: Sequence[str] = (),
        chunk_ids: Sequence[int] = (),
        policy_version: int | None = None,
        error: str | None = None,
        latency_ms: float = 0.0,
    ) -> None:
        """Append one row on its own (refusals before a call starts, e.g. 401/403)."""
        row = self._row(
            principals=principals,
            transport=transport,
            method=method,
            outcome=outcome,
            client_id=client_id,
            target=target,
            arguments=arguments,
            document_ids=document_ids,
            chunk_ids=chunk_ids,
            policy_version=policy_version,
            error=error,
            latency_ms=latency_ms,
        )
        with anyio.CancelScope(shield=True):
            await self._insert_alone(row)

    # --- the two shapes of a call -------------------------------------------------------

    def _facts(
        self,
        caller: Caller | None,
        method: str,
        target: str | None,
        arguments: Mapping[str, Any] | None,
        transport: str | None,
    ) -> CallFacts:
        return CallFacts(
            caller=caller,
            method=method,
            target=target,
            arguments=dict(arguments or {}),
            transport=transport or (caller.transport if caller else "internal"),
            started=time.perf_counter(),
        )

    @asynccontextmanager
    async def call(
        self,
        caller: Caller | None,
        *,
        method: str,
        target: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        transport: str | None = None,
    ) -> AsyncIterator[CallRecord]:
        """A read: time it and record it on the way out, with the outcome its error implies."""
        facts = self._facts(caller, method, target, arguments, transport)
        rec = CallRecord()
        failure: BaseException | None = None
        try:
            yield rec
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                # Shielded: a cancelled call (client gone, MCP cancellation) is still audited;
                # anyio cancel scopes would otherwise cancel this write too.
                with anyio.CancelScope(shield=True):
                    await self._insert_alone(self.row_of(facts, rec, failure))
            except DatabaseUnavailable:
                # A failed call stays failed with its own error; a successful one fails now.
                if failure is None:
                    raise

    @asynccontextmanager
    async def change(
        self,
        caller: Caller | None,
        *,
        method: str,
        target: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        transport: str | None = None,
    ) -> AsyncIterator[ChangeScope]:
        """A change: the body writes through ``scope.session``; the ok row joins its commit."""
        facts = self._facts(caller, method, target, arguments, transport)
        failure: BaseException | None = None
        scope: ChangeScope | None = None
        try:
            async with self.db.sessions() as session, session.begin():
                scope = ChangeScope(self, facts, session)
                yield scope
                if not scope.written:
                    row = scope.row()
                    try:
                        # A savepoint: when audit is fail-open the change may still commit.
                        async with session.begin_nested():
                            await session.execute(insert(AuditEntry).values(**row))
                    except Exception as exc:
                        self.write_failed(row, exc)
                        if self.settings.fail_closed:
                            raise DatabaseUnavailable(AUDIT_UNAVAILABLE) from exc
                    scope.written = True
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if failure is not None:
                # The change rolled back; its failure gets a row of its own.
                rec = scope.record if scope is not None else CallRecord()
                try:
                    with anyio.CancelScope(shield=True):
                        await self._insert_alone(self.row_of(facts, rec, failure))
                except DatabaseUnavailable:
                    pass  # the call keeps its own error; the row is in the error log

    @asynccontextmanager
    async def failures(
        self,
        caller: Caller | None,
        *,
        method: str,
        target: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        transport: str | None = None,
    ) -> AsyncIterator[ChangeScope]:
        """A change made on the blocking engine: the service writes the ok row itself
        (``scope.write_sync``, inside its transaction); a failure is recorded here."""
        facts = self._facts(caller, method, target, arguments, transport)
        failure: BaseException | None = None
        async with self.db.sessions() as session:
            scope = ChangeScope(self, facts, session)
            try:
                yield scope
            except BaseException as exc:
                failure = exc
                raise
            finally:
                if failure is not None:
                    try:
                        with anyio.CancelScope(shield=True):
                            await self._insert_alone(self.row_of(facts, scope.record, failure))
                    except DatabaseUnavailable:
                        pass
                elif failure is None and not scope.written:
                    # The service returned without writing the row: record it now, never lose it.
                    log.error("audited change %s returned without its audit row", facts.method)
                    with anyio.CancelScope(shield=True):
                        await self._insert_alone(self.row_of(facts, scope.record, None))


__all__ = [
    "AUDIT_UNAVAILABLE",
    "OUTCOMES",
    "QUERY_KEYS",
    "AuditRecorder",
    "CallRecord",
    "ChangeScope",
    "Outcome",
    "outcome_of",
]
