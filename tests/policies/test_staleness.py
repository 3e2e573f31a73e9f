"""A replica whose policy LISTEN and poll both fail stops serving once its snapshot is
older than ``policy.max_age_s`` (fail closed), and serves again once it is confirmed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from mcp import Client

from core.errors import PolicyError
from core.identity import Caller
from policies.engine import STALE_POLICY, PolicyEngine
from policies.listener import BOOTSTRAP_ACTOR, PolicyListener
from policies.rules import AccessRule, PolicySet
from policies.snapshot import PolicySnapshot
from policies.store import PolicyStore
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.embeddings.base import Embedder
from server.mcp.calls import POLICY_FAILED
from server.mcp.server import build_mcp_server
from server.mcp.state import McpState
from server.settings import Settings
from tests.mcp.conftest import open_state
from tests.search.corpus import Doc, insert_documents, insert_sources

pytestmark = pytest.mark.anyio

READER = Caller.of("user:alice", "group:staff")
# Nothing listens here: connections are refused at once.
DEAD_DSN = "postgresql://kb@127.0.0.1:1/kb?connect_timeout=1"


async def wait_until(predicate: Callable[[], bool], within: float) -> None:
    started = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - started < within, "condition never held"
        await asyncio.sleep(0.02)


async def test_searches_fail_closed_when_the_policy_goes_unconfirmed_then_recover(
    settings: Settings, fresh_database: str, db_target: DatabaseTarget
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    doc = Doc("page", ["text"], ["group:staff"])
    insert_documents(fresh_database, [doc], vectors=[[np.zeros(384)]])
    db = Database.open(db_target, settings)
    # The listener's own view of the database is cut off (LISTEN and the poll's pool),
    # while the database that serves searches is up: the case with no other signal.
    dead = Database.open(DatabaseTarget(to_sqlalchemy_url(DEAD_DSN)), settings)
    try:
        store = PolicyStore(db)
        await store.add([AccessRule("group:staff", "acl:source")], BOOTSTRAP_ACTOR)
        engine = PolicyEngine(await store.load_snapshot(()), max_age=0.6)
        assert await store.readable_document_ids(engine.filter_for(READER)) == {str(doc.id)}

        cut_off = PolicyListener(engine, PolicyStore(dead), DEAD_DSN, retry_delay=0.05)
        await cut_off.start()
        try:
            await wait_until(lambda: engine.is_stale, 5)
            with pytest.raises(PolicyError) as exc:
                engine.filter_for(READER)
            assert str(exc.value) == STALE_POLICY
            assert engine.age > 0.6
        finally:
            await cut_off.stop()

        # The database answers again: the first successful poll confirms, serving resumes.
        healthy = PolicyListener(engine, store, db_target.dsn, poll_interval=0.1, retry_delay=0.05)
        await healthy.start()
        try:
            await wait_until(lambda: not engine.is_stale, 5)
            assert await store.readable_document_ids(engine.filter_for(READER)) == {str(doc.id)}
            # And it stays confirmed by the periodic poll well past the bound.
            await asyncio.sleep(1.0)
            assert engine.age < 0.6
            engine.filter_for(READER)
        finally:
            await healthy.stop()
    finally:
        await dead.dispose()
        await db.dispose()


def test_an_unwatched_engine_never_goes_stale() -> None:
    engine = PolicyEngine.of(PolicyEngine.empty().snapshot.policy)
    assert engine.max_age is None and not engine.is_stale
    engine.filter_for(READER)


async def test_mcp_calls_fail_closed_on_a_stale_policy_and_recover(
    make_settings: Callable[..., Settings], fresh_database: str, embedder: Embedder
) -> None:
    """What a client sees: the documented policy error, not results from an old policy."""
    insert_sources(fresh_database, {"wiki": ("files", "Wiki")})
    insert_documents(
        fresh_database, [Doc("page", ["text"], ["group:staff"])], vectors=[[np.zeros(384)]]
    )
    settings = make_settings()
    policy = PolicySet.of([AccessRule("group:staff", "acl:source")])
    engine = PolicyEngine(PolicySnapshot(1, policy), max_age=0.2)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[McpState]:
        async with open_state(settings, embedder, Caller.of(*READER.principals)) as state:
            yield replace(state, policies=engine)

    async with Client(build_mcp_server(settings, lifespan)) as client:
        await asyncio.sleep(0.3)  # nothing confirms the snapshot: past the bound
        for tool, args in (("search", {"query": "text"}), ("list_sources", {})):
            stale = await client.call_tool(tool, args)
            assert stale.is_error
            assert stale.content[0].text.endswith(POLICY_FAILED)  # type: ignore[union-attr]
        engine.confirm()  # what the listener's next successful poll does
        fresh = await client.call_tool("list_sources", {})
        assert not fresh.is_error and "wiki" in fresh.content[0].text  # type: ignore[union-attr]
