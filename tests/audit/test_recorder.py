"""AuditRecorder: what a row holds, query hashing, outcomes, and fail-closed behaviour."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import psycopg
import pytest
from sqlalchemy import event

from core.errors import DatabaseUnavailable, InvalidRequest, NotFound
from core.identity import Caller
from server.audit import repository
from server.runtime import open_runtime
from server.settings import Settings

ALICE = Caller.of("user:alice", "group:eng", transport="http", client_id="claude")


@pytest.mark.anyio
async def test_call_records_everything(
    make_settings: Callable[..., Settings], fresh_database: str
) -> None:
    settings = make_settings()
    async with open_runtime(settings, load_model=False) as runtime:
        async with runtime.audit.call(
            ALICE,
            method="tools/call",
            target="search",
            arguments={"query": "payroll 2025", "top_k": 5},
        ) as rec:
            rec.documents(["d1", "d2", "d1"])
            rec.chunks([10, 11])
            rec.policy_version = 7
        with pytest.raises(NotFound):
            async with runtime.audit.call(ALICE, method="tools/call", target="fetch"):
                raise NotFound("no such document")
        with pytest.raises(InvalidRequest):
            async with runtime.audit.call(ALICE, method="tools/call", target="search"):
                raise InvalidRequest("top_k must be at most 50")
        with pytest.raises(ZeroDivisionError):
            async with runtime.audit.call(None, method="resources/read", transport="stdio"):
                raise ZeroDivisionError
        async with runtime.db.sessions() as session:
            rows = await repository.tail(session, limit=10)
        exported = [
            r
            async for r in repository.export_since(
                runtime.db, datetime.now(UTC) - timedelta(hours=1)
            )
        ]
    assert [r.id for r in exported] == [r.id for r in rows]
    first = repository.as_dict(rows[0])
    assert first["principals"] == ["group:eng", "user:alice"]
    assert first["client_id"] == "claude" and first["transport"] == "http"
    assert first["method"] == "tools/call" and first["target"] == "search"
    assert first["arguments"] == {"query": "payroll 2025", "top_k": 5}
    assert first["document_ids"] == ["d1", "d2"] and first["chunk_ids"] == [10, 11]
    assert first["policy_version"] == 7 and first["outcome"] == "ok"
    assert [r.outcome for r in rows[1:]] == ["not_found", "invalid", "error"]
    assert rows[1].error == "no such document"
    assert rows[3].error == "ZeroDivisionError" and rows[3].principals == []
    assert rows[3].transport == "stdio"


@pytest.mark.anyio
async def test_query_text_hashed_when_configured(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(audit={"query_text": "hash"})
    async with open_runtime(settings, load_model=False) as runtime:
        async with runtime.audit.call(
            ALICE, method="tools/call", target="search", arguments={"query": "salaries", "top_k": 3}
        ):
            pass
        async with runtime.db.sessions() as session:
            (row,) = await repository.tail(session, limit=1)
    expected = "sha256:" + hashlib.sha256(b"salaries").hexdigest()
    assert row.arguments == {"query": expected, "top_k": 3}


@pytest.mark.anyio
@pytest.mark.parametrize("fail_closed", [True, False])
async def test_audit_unavailable(
    make_settings: Callable[..., Settings],
    fresh_database: str,
    caplog: pytest.LogCaptureFixture,
    fail_closed: bool,
) -> None:
    settings = make_settings(audit={"fail_closed": fail_closed})
    # Roles are cluster-wide: a unique name keeps parallel tests apart.
    role = f"kb_no_audit_{uuid.uuid4().hex[:8]}"
    async with open_runtime(settings, load_model=False) as runtime:
        # A role without INSERT on audit_log: the write is refused by the database.
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role}")
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            conn.execute(f"REVOKE ALL ON audit_log FROM {role}")
        events_ran = []

        async def limited() -> None:
            async with runtime.audit.call(ALICE, method="tools/call", target="search"):
                events_ran.append(True)

        # Every connection of the pool switches to the limited role.
        def set_role(dbapi_conn: object, record: object, proxy: object) -> None:
            cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cur.execute(f"SET ROLE {role}")
            cur.close()
            # Committed: a pooled connection is idle at checkout (the audit writer's lone
            # rows switch it to autocommit, which psycopg refuses inside a transaction).
            dbapi_conn.commit()  # type: ignore[attr-defined]

        event.listen(runtime.db.engine.sync_engine, "checkout", set_role)
        try:
            with caplog.at_level(logging.ERROR, logger="server.audit.recorder"):
                if fail_closed:
                    with pytest.raises(DatabaseUnavailable, match="audit log cannot be written"):
                        await limited()
                else:
                    await limited()
        finally:
            event.remove(runtime.db.engine.sync_engine, "checkout", set_role)
        assert events_ran == [True]
        assert any("audit write failed" in m and "user:alice" in m for m in caplog.messages)
        # A call that failed on its own keeps its own error even when audit fails too.
        event.listen(runtime.db.engine.sync_engine, "checkout", set_role)
        try:
            with pytest.raises(NotFound):
                async with runtime.audit.call(ALICE, method="tools/call", target="fetch"):
                    raise NotFound("gone")
        finally:
            event.remove(runtime.db.engine.sync_engine, "checkout", set_role)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
    assert count == (0,)


@pytest.mark.anyio
async def test_cancelled_call_is_still_audited(make_settings: Callable[..., Settings]) -> None:
    """A client that cancels (or disconnects) mid-call still leaves its audit row."""
    settings = make_settings()
    async with open_runtime(settings, load_model=False) as runtime:
        with anyio.move_on_after(0.2) as scope:
            async with runtime.audit.call(ALICE, method="tools/call", target="search"):
                await anyio.sleep(30)
        assert scope.cancelled_caught
        async with runtime.db.sessions() as session:
            rows = await repository.tail(session, limit=5)
    assert [(r.target, r.outcome) for r in rows] == [("search", "error")]
    assert rows[0].error == "CancelledError"
