"""Admin commands of the CLI: a database-only runtime and the audit row of each call."""

from __future__ import annotations

import getpass
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from server.audit.recorder import Outcome
from server.runtime import Runtime, open_runtime
from server.settings import Settings

log = logging.getLogger(__name__)


def operator() -> str:
    """Who runs the CLI, for created_by fields and audit rows."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@asynccontextmanager
async def admin_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings, load_model=False, watch_policies=False) as runtime:
        yield runtime


async def audit_cli_call(
    runtime: Runtime, method: str, outcome: Outcome, arguments: Mapping[str, Any]
) -> None:
    """CLI admin calls have no token; the operating-system user is the client id."""
    await runtime.audit.record(
        principals=(),
        client_id=operator(),
        transport="cli",
        method=method,
        arguments=arguments,
        outcome=outcome,
    )


__all__ = ["admin_runtime", "audit_cli_call", "operator"]
