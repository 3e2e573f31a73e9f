"""The scrub step: any input is stored (NUL, lone surrogates), credentials are not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.identity import Caller
from server.audit import repository
from server.audit.scrub import REDACTED, scrub
from server.runtime import open_runtime
from server.settings import Settings

ALICE = Caller.of("user:alice", transport="http", client_id="claude")


@pytest.mark.anyio
async def test_nul_and_lone_surrogates_are_stored(make_settings: Callable[..., Settings]) -> None:
    """The old recorder passed NUL to JSONB: the insert failed, the call was refused and
    lived only in the error log."""
    settings = make_settings()
    async with open_runtime(settings, load_model=False) as runtime:
        async with runtime.audit.call(
            ALICE,
            method="tools/call",
            target="fet\x00ch",
            arguments={"id": "abc\x00def", "nested": {"k\x00": ["x\ud800y"]}},
        ):
            pass
        async with runtime.db.sessions() as session:
            (row,) = await repository.tail(session, limit=1)
    assert row.target == "fet\ufffdch"
    assert row.arguments == {"id": "abc\ufffddef", "nested": {"k\ufffd": ["x\\ud800y"]}}


def test_credentials_are_withheld_and_references_kept() -> None:
    stored = scrub(
        {
            "definition": {
                "name": "crm",
                "kind": "sql",
                "url": "postgresql://etl:hunter2@db.internal/crm",
                "password": "hunter2",
                "api_key": "${CRM_KEY}",
                "options": {"client_secret": "s3cr3t", "schema": "public"},
            }
        }
    )
    definition = stored["definition"]
    assert definition["url"] == f"postgresql://etl:{REDACTED}@db.internal/crm"
    assert definition["password"] == REDACTED
    assert definition["api_key"] == "${CRM_KEY}"  # names the variable, not its value
    assert definition["options"] == {"client_secret": REDACTED, "schema": "public"}
    assert "hunter2" not in repr(stored) and "s3cr3t" not in repr(stored)
