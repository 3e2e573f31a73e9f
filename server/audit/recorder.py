"""Write audit rows: one per MCP or admin call, append-only, never silently dropped.

Each row is written in its own short transaction (independent of the call's), before the
answer leaves the server. When the write fails and ``audit.fail_closed`` is set, the call
fails with :class:`~core.errors.DatabaseUnavailable`; otherwise the whole record goes to
the error log so it is still not lost.

Typical use from a door (MCP handler, REST endpoint)::

    async with runtime.audit.call(caller, method="tools/call", target="search",
                                  arguments={"query": q}) as rec:
        hits = await search(...)
        rec.documents(h.document_id for h in hits)
        rec.chunks(h.chunk_id for h in hits)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from sqlalchemy import insert

from core.errors import (
    AccessDenied,
    AuthError,
    DatabaseUnavailable,
    InvalidRequest,
    KBError,
    NotFound,
)
from core.identity import Caller
from server.db.engine import Database
from server.db.models import AuditEntry
from server.settings import AuditSettings

log = logging.getLogger(__name__)

Outcome = Literal["ok", "denied", "not_found", "invalid", "error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "denied", "not_found", "invalid", "error")
# Argument names that hold free query text (hashed when audit.query_text is "hash").
QUERY_KEYS = frozenset({"query", "q", "text", "question"})
AUDIT_UNAVAILABLE = "the audit log cannot be written, so the call was refused"


def outcome_of(exc: BaseException | None) -> Outcome:
    if exc is None:
        return "ok"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, AccessDenied | AuthError):
        return "denied"
    if isinstance(exc, InvalidRequest):
        return "invalid"
    return "error"


def _sha256(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass
class CallRecord:
    """Filled in by the door while the call runs; written when it ends."""

    document_ids: list[str] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)
    policy_version: int | None = None
    outcome: Outcome | None = None

    def documents(self, ids: Iterable[object]) -> None:
        self.document_ids.extend(str(i) for i in ids)

    def chunks(self, ids: Iterable[int]) -> None:
        self.chunk_ids.extend(int(i) for i in ids)


class AuditRecorder:
    def __init__(self, db: Database, settings: AuditSettings) -> None:
        self.db = db
        self.settings = settings

    def scrub(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments as stored: query text hashed if configured, everything JSON-safe."""
        out: dict[str, Any] = {}
        for key, value in arguments.items():
            if self.settings.query_text == "hash" and key in QUERY_KEYS and isinstance(value, str):
                out[key] = _sha256(value)
            else:
                out[key] = value
        # Round-trip so a value JSONB cannot hold fails here, as text, not in the driver.
        result: dict[str, Any] = json.loads(json.dumps(out, default=str))
        return result

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
        """Append one row. Raises DatabaseUnavailable if it fails and audit is fail-closed."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        row: dict[str, Any] = {
            "principals": sorted(principals),
            "client_id": client_id,
            "transport": transport,
            "method": method,
            "target": target,
            "arguments": self.scrub(arguments or {}),
            "document_ids": list(dict.fromkeys(document_ids)),
            "chunk_ids": list(dict.fromkeys(chunk_ids)),
            "policy_version": policy_version,
            "outcome": outcome,
            "error": error,
            "latency_ms": round(latency_ms, 3),
        }
        try:
            async with self.db.sessions.begin() as session:
                await session.execute(insert(AuditEntry).values(**row))
        except Exception as exc:
            # Never silent: the record itself goes to the log either way.
            log.error(
                "audit write failed (%s): %s", exc.__class__.__name__, json.dumps(row, default=str)
            )
            if self.settings.fail_closed:
                raise DatabaseUnavailable(AUDIT_UNAVAILABLE) from exc

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
        """Time a call and record it on the way out, with the outcome its exception implies."""
        rec = CallRecord()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            yield rec
        except BaseException as exc:
            failure = exc
            raise
        finally:
            outcome = rec.outcome or outcome_of(failure)
            error = None
            if failure is not None:
                error = (
                    failure.message if isinstance(failure, KBError) else failure.__class__.__name__
                )
            try:
                # Shielded: a cancelled call (client gone, MCP cancellation) is still audited;
                # anyio cancel scopes would otherwise cancel this write too.
                with anyio.CancelScope(shield=True):
                    await self.record(
                        principals=caller.principals if caller else (),
                        client_id=caller.client_id if caller else None,
                        transport=transport or (caller.transport if caller else "internal"),
                        method=method,
                        target=target,
                        arguments=arguments,
                        document_ids=rec.document_ids,
                        chunk_ids=rec.chunk_ids,
                        policy_version=rec.policy_version,
                        outcome=outcome,
                        error=error,
                        latency_ms=(time.perf_counter() - started) * 1000,
                    )
            except DatabaseUnavailable:
                # A failed call stays failed with its own error; a successful one fails now.
                if failure is None:
                    raise


__all__ = ["AUDIT_UNAVAILABLE", "OUTCOMES", "AuditRecorder", "CallRecord", "Outcome", "outcome_of"]
