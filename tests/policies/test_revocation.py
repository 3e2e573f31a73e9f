"""Revocation across processes: a second server process stops returning a document as soon
as the policy change that revokes it commits (LISTEN/NOTIFY), and this one at once."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.identity import Caller
from policies.admin import PolicyAdmin
from policies.listener import refresh
from policies.rules import AccessRule
from server.db.models import Document, Source
from server.runtime import open_runtime
from server.settings import Settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DOC = "00000000-0000-0000-0000-00000000beef"
ACTOR = Caller.of("svc:cli:tester", transport="cli")
ROUNDS = 10


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert raw, "the second process exited"
    return dict(json.loads(raw))


async def test_revocation_reaches_a_second_process(settings: Settings, tmp_path: Path) -> None:
    alice = Caller.of("user:alice")
    grant = AccessRule("user:alice", "collection:hr")
    async with open_runtime(settings, load_model=False) as rt:
        async with rt.db.sessions() as session, session.begin():
            session.add(Source(name="files", kind="files"))
            await session.flush()
            session.add(
                Document(
                    id=uuid.UUID(DOC),
                    source="files",
                    external_id="x",
                    uri="file:///x",
                    title="x",
                    content_type="text/plain",
                    content_hash="h",
                    collection="hr",
                    path="/hr/x",
                    level=0,
                    acl=[],
                )
            )
        admin = PolicyAdmin(rt.policy_store, rt.policies)
        await admin.add([grant], ACTOR)

        assert settings.database.url is not None
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.policies.revocation_child",
            settings.database.url.get_secret_value(),
            str(tmp_path / "child"),
            DOC,
            "user:alice",
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            ready = await _line(child)
            assert ready["readable"] is True
            delays: list[float] = []
            after_commit: list[float] = []
            for _ in range(ROUNDS):
                _, items = await admin.list_items()
                rule_id = next(s.id for s in items if s.item == grant)
                started = time.time()
                await rt.policy_store.remove([rule_id], ACTOR)
                committed = time.time()
                await refresh(rt.policies, rt.policy_store)
                # This process: the very next request no longer returns the document.
                assert not await rt.policy_store.is_readable(rt.policies.filter_for(alice), DOC)
                seen = await _line(child)
                assert seen["readable"] is False and seen["version"] == rt.policies.version
                delays.append((seen["at"] - started) * 1000)
                after_commit.append((seen["at"] - committed) * 1000)
                await admin.add([grant], ACTOR)
                assert (await _line(child))["readable"] is True
        finally:
            child.kill()
            await child.wait()
    delays.sort()
    print(
        f"\nrevocation over {ROUNDS} rounds, until the second process stops returning the"
        f" document: median {statistics.median(delays):.1f} ms (max {delays[-1]:.1f}) from the"
        f" start of the revoking call, median {statistics.median(after_commit):.1f} ms"
        f" (max {max(after_commit):.1f}) from its commit"
    )
    # Notifications arrive in milliseconds; the 5 s poll is the fallback, not the path.
    assert delays[-1] < 2000
