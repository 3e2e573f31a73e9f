"""``who-can`` and ``diff`` judge principal sets as callers carry them, not one principal
at a time: "the group denies, the user allows" and "only the pair reads" are reported."""

from __future__ import annotations

import numpy as np
import pytest

from policies.access import RowAttributes
from policies.engine import PolicyEngine
from policies.explain import caller_sets, diff, who_can
from policies.listener import BOOTSTRAP_ACTOR
from policies.rules import AccessRule, PolicySet, RoleLink
from policies.snapshot import PolicySnapshot
from policies.store import PolicyStore
from server.db.engine import Database, DatabaseTarget
from server.settings import Settings
from tests.search.corpus import Doc, insert_documents, insert_sources

pytestmark = pytest.mark.anyio

POLICY = PolicySet.of(
    [
        AccessRule("user:alice", "collection:hr"),
        AccessRule("group:contractors", "collection:eng"),
        AccessRule("group:contractors", "collection:hr", "deny"),
        RoleLink("group:staff", "role:staff"),
        AccessRule("role:staff", "acl:source"),
    ]
)


def doc(collection: str, acl: tuple[str, ...] = ()) -> RowAttributes:
    return RowAttributes(
        "7d1c0e0a-0000-4000-8000-000000000001", "wiki", collection, "/x", 0, acl, "t"
    )


def test_who_can_reports_the_group_deny_beside_the_user_allow() -> None:
    snapshot = PolicySnapshot(1, POLICY)
    readers = {r.principal: r for r in who_can(snapshot, doc("hr"))}
    assert set(readers) == {"user:alice"}
    assert readers["user:alice"].denied_with == ("group:contractors",)
    assert readers["user:alice"].explanation.reason.endswith(
        "denied if also carrying group:contractors"
    )
    # Asked with the set the caller really carries: nobody reads it.
    assert who_can(snapshot, doc("hr"), [frozenset({"user:alice", "group:contractors"})]) == []


def test_who_can_finds_a_pair_that_reads_when_neither_member_does() -> None:
    # acl:source is held through group:staff's role, and the ACL names alice: only a caller
    # carrying both reads it.
    readers = who_can(PolicySnapshot(1, POLICY), doc("finance", ("user:alice",)))
    assert [r.principal for r in readers] == ["group:staff,user:alice"]
    assert readers[0].principals == ("group:staff", "user:alice")


def test_caller_sets_pair_people_with_groups_only() -> None:
    sets = caller_sets(["user:a", "email:a@x", "svc:bot", "group:g"])
    assert frozenset({"svc:bot", "group:g"}) not in sets  # service tokens carry no groups
    assert frozenset({"user:a", "group:g"}) in sets and frozenset({"email:a@x", "group:g"}) in sets
    assert len(sets) == 4 + 2


async def test_diff_reports_what_a_caller_carrying_the_group_loses(
    settings: Settings, fresh_database: str, db_target: DatabaseTarget
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", "")})
    hr = Doc("hr page", ["h"], [], collection="hr")
    eng = Doc("eng page", ["e"], [], collection="eng")
    insert_documents(fresh_database, [hr, eng], vectors=[[np.zeros(384)], [np.zeros(384)]])
    db = Database.open(db_target, settings)
    try:
        store = PolicyStore(db)
        current = PolicySet.of([r for r in POLICY.items() if r != POLICY.rules[2]])
        await store.add(current.items(), BOOTSTRAP_ACTOR)
        engine = PolicyEngine(await store.load_snapshot(()))
        # Proposed: the contractors deny on hr. Alone, neither alice (she has no group) nor
        # the group (it never read hr) changes; alice carrying the group loses hr.
        changes = await diff(store, engine, POLICY)
        assert [(c.principal, c.gained, c.lost) for c in changes] == [
            ("group:contractors,user:alice", (), (str(hr.id),))
        ]
        # Explicit caller sets are judged as given.
        only = await diff(store, engine, POLICY, [frozenset({"user:alice"})])
        assert only == []
    finally:
        await db.dispose()
