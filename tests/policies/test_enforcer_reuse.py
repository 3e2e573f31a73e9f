"""One enforcer answers many rows: the matcher is parsed once and reused across calls.

The reuse must not freeze anything a later call depends on: the request and rule values
change per call, and pycasbin regenerates the role functions (``g``) per call, so a role
granted after the first decision has to count at the next one.
"""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import pytest

from policies.access import RowAttributes
from policies.enforcer import RowChecker, build_enforcer, enforce


def _row(collection: str, acl: tuple[str, ...] = (), level: int = 0) -> RowAttributes:
    return RowAttributes(
        "00000000-0000-0000-0000-000000000001", "s", collection, "/p", level, acl, "t"
    )


def test_decisions_alternate_correctly_on_one_enforcer() -> None:
    enforcer = build_enforcer(
        [
            ["group:eng", "collection:eng", "allow", "1", ""],
            ["group:eng", "collection:eng/secret", "deny", "", ""],
            ["group:eng", "acl:source", "allow", "", ""],
        ]
    )
    eng = {"group:eng"}
    cases = [
        (_row("eng"), True),
        (_row("eng/secret"), False),
        (_row("hr"), False),
        (_row("hr", acl=("group:eng",)), True),
        (_row("eng", level=2), False),
        (_row("eng/docs"), True),
    ]
    for _ in range(3):  # the same enforcer, decision after decision
        assert [enforce(enforcer, eng, row) for row, _ in cases] == [ok for _, ok in cases]


def test_the_matcher_is_parsed_once() -> None:
    enforcer = build_enforcer([["group:eng", "collection:eng", "allow", "", ""]])
    with mock.patch("casbin.util.expression.ast.parse", wraps=__import__("ast").parse) as parse:
        for _ in range(5):
            assert enforce(enforcer, {"group:eng"}, _row("eng"))
    assert parse.call_count <= 1


def test_a_role_granted_after_a_decision_counts_at_the_next() -> None:
    enforcer = build_enforcer([["role:staff", "collection:eng", "allow", "", ""]])
    assert not enforce(enforcer, {"user:ann"}, _row("eng"))
    enforcer.add_grouping_policy("user:ann", "role:staff")
    assert enforce(enforcer, {"user:ann"}, _row("eng"))
    enforcer.remove_grouping_policy("user:ann", "role:staff")
    assert not enforce(enforcer, {"user:ann"}, _row("eng"))


def test_a_row_checker_remembers_decisions_per_row_attributes() -> None:
    enforcer = build_enforcer(
        [
            ["group:eng", "collection:eng", "allow", "", 'metadata.team == "core"'],
            ["group:eng", "doc:00000000-0000-0000-0000-000000000002", "deny", "", ""],
        ]
    )
    checker = RowChecker(enforcer, frozenset({"group:eng"}))
    core = replace(_row("eng"), metadata={"team": "core"})
    with mock.patch.object(enforcer, "enforce", wraps=enforcer.enforce) as evaluated:
        assert [checker(core) for _ in range(5)] == [True] * 5
        assert evaluated.call_count == 1  # the same attributes: one Casbin evaluation
        # Any attribute the matcher reads is part of the key: each is decided afresh.
        assert not checker(replace(core, metadata={"team": "web"}))
        assert not checker(replace(core, collection="hr"))
        assert not checker(replace(core, document_id="00000000-0000-0000-0000-000000000002"))
        assert checker(replace(core, acl=("user:x",)))
        assert evaluated.call_count == 5
        assert not checker(replace(core, metadata={"team": "web"}))  # a denial is remembered
        assert evaluated.call_count == 5


def test_a_failed_evaluation_is_not_remembered() -> None:
    enforcer = build_enforcer([["group:eng", "collection:eng", "allow", "", ""]])
    checker = RowChecker(enforcer, frozenset({"group:eng"}))
    with mock.patch.object(enforcer, "enforce", side_effect=RuntimeError("boom")):
        with pytest.raises(RuntimeError):
            checker(_row("eng"))
    assert checker(_row("eng"))
