"""One enforcer answers many rows: the matcher is parsed once and reused across calls.

The reuse must not freeze anything a later call depends on: the request and rule values
change per call, and pycasbin regenerates the role functions (``g``) per call, so a role
granted after the first decision has to count at the next one.
"""

from __future__ import annotations

from unittest import mock

from policies.access import RowAttributes
from policies.enforcer import build_enforcer, enforce


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
