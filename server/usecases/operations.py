"""Operator actions outside the running service: schema downgrades and admin dev tokens.

They run where no full runtime can open (a downgrade moves the schema the runtime checks;
a token needs no runtime at all), so they take the database target and the operator's
capability directly. The audit row is written **before** the action: a downgrade to
``base`` drops ``audit_log`` itself, and a token printed before its row was stored could
not be traced. If the row cannot be written the action does not run (fail-closed); if the
action fails after its row, a second row records the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import DatabaseUnavailable
from policies.capability import AdminCaller

if TYPE_CHECKING:
    from server.db.engine import DatabaseTarget
    from server.settings import Settings

T = TypeVar("T")


async def audited_operation(
    settings: Settings,
    target: DatabaseTarget,
    admin: AdminCaller,
    *,
    method: str,
    arguments: Mapping[str, Any],
    run: Callable[[], T],
) -> T:
    """Record the action, then run it (blocking, on a thread); record a failure too."""
    from server.audit.recorder import AuditRecorder, error_text, outcome_of
    from server.db.engine import Database

    db = Database.open(target, settings)
    try:
        recorder = AuditRecorder(db, settings.audit)
        caller = admin.caller
        await recorder.record(
            principals=caller.principals,
            client_id=caller.client_id,
            transport=caller.transport,
            method=method,
            arguments=arguments,
            outcome="ok",
        )
        try:
            return await asyncio.to_thread(run)
        except Exception as exc:
            # The table may be gone with the schema: then the row is in the error log.
            with contextlib.suppress(DatabaseUnavailable):
                await recorder.record(
                    principals=caller.principals,
                    client_id=caller.client_id,
                    transport=caller.transport,
                    method=method,
                    arguments=arguments,
                    outcome=outcome_of(exc),
                    error=error_text(exc),
                )
            raise
    finally:
        await db.dispose()


__all__ = ["audited_operation"]
