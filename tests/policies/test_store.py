"""The policy store and runtime wiring: versioned, audited, notified changes; listener reloads."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from core.errors import InvalidRequest, NotFound, PolicyError
from core.identity import Caller
from policies.admin import PolicyAdmin
from policies.listener import PolicyListener
from policies.rules import AccessRule, CollectionLink, PolicySet, RoleLink, parse_policy_yaml
from policies.store import PolicyStore
from server.db.models import AuditEntry, Document, PolicyVersion, Source
from server.runtime import Runtime, open_runtime
from server.settings import Settings

pytestmark = pytest.mark.anyio

ACTOR = Caller.of("svc:cli:tester", transport="cli", client_id="cli:tester")
DOC = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


async def _seed_document(rt: Runtime, **overrides: object) -> None:
    values: dict[str, object] = {
        "id": DOC,
        "source": "files",
        "external_id": "hr/pay.txt",
        "uri": "file:///hr/pay.txt",
        "title": "pay",
        "content_type": "text/plain",
        "content_hash": "x",
        "collection": "hr/payroll",
        "path": "/hr/payroll/pay.txt",
        "level": 2,
        "acl": ["group:hr"],
        "metadata_": {"region": "eu"},
    }
    values.update(overrides)
    async with rt.db.sessions() as session, session.begin():
        session.add(Source(name="files", kind="files"))
        await session.flush()  # no ORM relationship orders the two inserts
        session.add(Document(**values))


async def _audit_rows(rt: Runtime) -> list[AuditEntry]:
    async with rt.db.sessions() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_changes_bump_the_version_audit_and_refresh(settings: Settings) -> None:
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        await _seed_document(rt)
        admin = PolicyAdmin(rt.policy_store, rt.policies)
        alice = Caller.of("user:alice", "group:hr")
        assert not rt.policies.filter_for(alice).permits(await _doc(rt))

        change = await admin.add(
            [AccessRule("role:hr", "collection:hr", max_level=2), RoleLink("group:hr", "role:hr")],
            ACTOR,
        )
        assert (change.version, change.added) == (1, 2)
        assert rt.policies.version == 1  # this process sees its own change at once
        assert await rt.policy_store.is_readable(rt.policies.filter_for(alice), str(DOC))

        version, items = await admin.list_items()
        assert version == 1 and len(items) == 2
        rule_id = next(s.id for s in items if isinstance(s.item, AccessRule))
        change = await admin.remove([rule_id], ACTOR)
        assert change.version == 2 and change.removed == 1
        assert not await rt.policy_store.is_readable(rt.policies.filter_for(alice), str(DOC))

        async with rt.db.sessions() as session:
            versions = (await session.execute(select(PolicyVersion))).scalars().all()
        assert [(v.version, v.actor) for v in versions] == [
            (1, "svc:cli:tester"),
            (2, "svc:cli:tester"),
        ]
        audit = [
            (a.method, a.transport, a.outcome, a.policy_version) for a in await _audit_rows(rt)
        ]
        assert audit == [("policy.add", "cli", "ok", 1), ("policy.remove", "cli", "ok", 2)]


async def _doc(rt: Runtime):  # type: ignore[no-untyped-def]
    doc = await rt.policy_store.document(str(DOC))
    assert doc is not None
    return doc


async def test_refused_changes_leave_the_policy_alone_and_are_audited(settings: Settings) -> None:
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        admin = PolicyAdmin(rt.policy_store, rt.policies)
        with pytest.raises(PolicyError, match="prefix"):
            await admin.add([AccessRule("alice", "*")], ACTOR)
        with pytest.raises(PolicyError, match="wildcard"):
            await admin.add([AccessRule("user:a", "path:/hr/*/salary")], ACTOR)
        with pytest.raises(PolicyError, match="cycle"):
            await admin.add([RoleLink("role:a", "role:b"), RoleLink("role:b", "role:a")], ACTOR)
        with pytest.raises(PolicyError, match="cycle"):
            await admin.add([CollectionLink("a", "b"), CollectionLink("b", "a")], ACTOR)
        with pytest.raises(NotFound):
            await admin.remove([12345], ACTOR)
        await admin.add([AccessRule("user:a", "*")], ACTOR)
        with pytest.raises(InvalidRequest, match="already"):
            await admin.add([AccessRule("user:a", "*")], ACTOR)
        assert await rt.policy_store.version() == 1
        outcomes = [(a.method, a.outcome) for a in await _audit_rows(rt)]
        assert outcomes.count(("policy.add", "invalid")) == 5
        assert ("policy.remove", "not_found") in outcomes


async def test_import_merge_replace_and_export_round_trip(settings: Settings) -> None:
    text = """
roles:
  group:hr: role:hr
collections:
  payroll: hr
rules:
  - subject: role:hr
    object: collection:hr
    when: metadata.region in ["eu"]
    comment: HR
  - subject: group:contractors
    object: path:/hr/salaries/
    effect: deny
"""
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        admin = PolicyAdmin(rt.policy_store, rt.policies)
        policy = parse_policy_yaml(text)
        change = await admin.import_policy(policy, ACTOR, replace=False)
        assert change.added == 4
        exported = await admin.export()
        assert parse_policy_yaml(exported) == policy
        smaller = PolicySet.of([AccessRule("user:bob", "source:files")])
        change = await admin.import_policy(smaller, ACTOR, replace=True)
        assert (change.added, change.removed, change.version) == (1, 4, 2)
        _, stored = await rt.policy_store.load()
        assert stored == smaller


async def test_first_start_imports_the_policy_file(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - subject: group:eng\n    object: collection:eng\n")
    settings = make_settings(policy_file=str(path))
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        assert rt.policies.version == 1
        assert rt.policies.snapshot.policy.rules == (AccessRule("group:eng", "collection:eng"),)
    path.write_text("rules: []\n")  # not re-imported once a policy exists
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        assert rt.policies.version == 1 and len(rt.policies.snapshot.policy) == 1


async def test_listener_reloads_on_notify_and_by_polling(settings: Settings) -> None:
    async with open_runtime(settings, load_model=False, watch_policies=True) as rt:
        other = PolicyStore(rt.db)  # another replica's writes, same database
        await other.add([AccessRule("user:a", "*")], ACTOR)
        started = time.perf_counter()
        while rt.policies.version != 1:
            assert time.perf_counter() - started < 5, "the notification never arrived"
            await asyncio.sleep(0.002)

    # Without notifications (nobody listening when the change lands): the poll catches up.
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        listener = PolicyListener(rt.policies, rt.policy_store, rt.target.dsn, poll_interval=0.2)
        await listener.start()
        try:
            await asyncio.wait_for(listener.connected.wait(), 5)
            async with rt.db.sessions() as session, session.begin():
                session.add(PolicyVersion(version=7, actor="test", summary={}))
            started = time.perf_counter()
            while rt.policies.version != 7:
                assert time.perf_counter() - started < 5, "the poll never reloaded"
                await asyncio.sleep(0.01)
        finally:
            await listener.stop()
