"""Who may administer: the capability for a caller, and the CLI operator's identity.

One convention for CLI operators on every command: the principal ``user:cli:<os user>``
holding ``role:admin``, client id ``kb-cli``. The CLI runs with direct access to the
database (its configuration holds the database URL), so its operator already has every
right the admin role gives; saying so in one identity makes audit rows read the same.
"""

from __future__ import annotations

import getpass
import logging
from typing import TYPE_CHECKING

from core.errors import AccessDenied
from core.identity import Caller
from policies.capability import AdminCaller, mint_admin

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger(__name__)

ADMIN_ROLE = "role:admin"
CLI_CLIENT_ID = "kb-cli"


def os_user() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def cli_operator() -> Caller:
    """The operator running a ``kb`` command: one identity on every command."""
    subject = f"user:cli:{os_user()}"
    return Caller(
        subject=subject,
        principals=frozenset({subject, ADMIN_ROLE}),
        transport="cli",
        client_id=CLI_CLIENT_ID,
    )


async def admin_of(runtime: Runtime, caller: Caller, *, action: str) -> AdminCaller:
    """The admin capability, or AccessDenied, recorded in the audit log either way."""
    try:
        return mint_admin(caller, runtime.policies)
    except AccessDenied as exc:
        await runtime.audit.record(
            principals=caller.principals,
            client_id=caller.client_id,
            transport=caller.transport,
            method="admin.authorize",
            target=action,
            outcome="denied",
            error=exc.message,
        )
        raise


__all__ = ["ADMIN_ROLE", "CLI_CLIENT_ID", "admin_of", "cli_operator", "os_user"]
