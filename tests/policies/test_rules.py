"""The rule language, lint, fail-closed normalisation and the engine, without a database."""

from __future__ import annotations

import logging

import pytest

from core.errors import PolicyError
from core.identity import Caller
from policies.access import RowAttributes
from policies.engine import PolicyEngine
from policies.lint import lint
from policies.rules import (
    AccessRule,
    CollectionLink,
    PolicySet,
    RoleLink,
    dump_policy_yaml,
    parse_policy_yaml,
)
from policies.selectors import Condition, canonical_conditions, parse_conditions, parse_selector
from policies.snapshot import MAX_HIERARCHY_DEPTH


def row(**overrides: object) -> RowAttributes:
    base: dict[str, object] = {
        "document_id": "00000000-0000-0000-0000-000000000001",
        "source": "files",
        "collection": "hr/payroll",
        "path": "/hr/x/payroll",
        "level": 1,
        "acl": (),
        "content_type": "text/plain",
        "metadata": {},
    }
    base.update(overrides)
    return RowAttributes(**base)  # type: ignore[arg-type]


def test_conditions_parse_canonically_and_refuse_anything_else() -> None:
    text = 'metadata.team=="a" && level<=2&&content_type in ["x", "y && z"]'
    assert parse_conditions(text) == (
        Condition("metadata.team", "==", "a"),
        Condition("level", "<=", 2),
        Condition("content_type", "in", ("x", "y && z")),
    )
    assert canonical_conditions(text) == (
        'metadata.team == "a" && level <= 2 && content_type in ["x", "y && z"]'
    )
    for bad in ('title == "x"', 'level <= "2"', "metadata.a.b == 'x'", 'metadata.t > "a"', "level"):
        with pytest.raises(PolicyError):
            parse_conditions(bad)


def test_selectors_and_the_keymatch_pitfall() -> None:
    assert str(parse_selector("collection:hr/payroll")) == "collection:hr/payroll"
    assert parse_selector("doc:00000000-0000-0000-0000-00000000000A").value.endswith("000a")
    for bad in ("path:/hr/*/salary", "collection:/hr", "bogus:x", "doc:nope", "acl:mine", "hr"):
        with pytest.raises(PolicyError):
            parse_selector(bad)


def test_policy_file_round_trip_and_errors() -> None:
    text = """
roles: {group:hr: [role:hr, role:audit], role:hr: role:staff}
collections: {payroll: hr}
rules:
  - subject: role:hr
    object: collection:hr
    max_level: 2
    when: [level >= 1, 'metadata.r == "eu"']
  - {subject: group:x, object: "*", effect: deny, comment: nope}
"""
    policy = parse_policy_yaml(text)
    assert len(policy) == 6
    assert policy.rules[0].when == 'level >= 1 && metadata.r == "eu"'
    assert parse_policy_yaml(dump_policy_yaml(policy)) == policy
    for bad, message in (
        ("rules: [{subject: a}]", "object"),
        ("rules: [{subject: user:a, object: '*', effect: maybe}]", "effect"),
        ("rules: [{subject: user:a, object: '*', colour: red}]", "unknown keys"),
        ("rules: [{subject: user:a, object: '*', when: 'x == 1'}]", "rule 1"),
        ("roles: [a, b]", "roles"),
        ("bogus: 1", "unknown top-level"),
        ("rules: [", "not valid YAML"),
    ):
        with pytest.raises(PolicyError, match=message):
            parse_policy_yaml(bad)


def test_lint_finds_cycles_depth_and_prefixes() -> None:
    chain = [RoleLink(f"role:r{i}", f"role:r{i + 1}") for i in range(MAX_HIERARCHY_DEPTH + 1)]
    policy = PolicySet.of(
        [
            AccessRule("alice", "*"),
            AccessRule("role:nobody", "*"),
            AccessRule("user:a", "*", "deny", max_level=2),
            RoleLink("group:x", "staff"),
            CollectionLink("a", "b"),
            CollectionLink("b", "a"),
            *chain,
        ]
    )
    issues = [str(i) for i in lint(policy)]
    assert any("subject needs a prefix" in i for i in issues)
    assert any("max_level applies to allow rules only" in i for i in issues)
    assert any("must be a role" in i for i in issues)
    assert any("collection hierarchy: cycle: a -> b -> a" in i for i in issues)
    assert any(f"exceeds {MAX_HIERARCHY_DEPTH}" in i for i in issues)
    assert any(i.startswith("warning: role:nobody") for i in issues)


def test_uncompilable_rules_fail_closed(caplog: pytest.LogCaptureFixture) -> None:
    alice = Caller.of("user:alice")
    with caplog.at_level(logging.WARNING, logger="policies.snapshot"):
        engine = PolicyEngine.of(
            PolicySet.of(
                [
                    AccessRule("user:alice", "*"),
                    AccessRule("user:alice", "bogus:x"),  # dropped allow
                    AccessRule("user:alice", "path:/hr/*/salary", "deny"),  # deny of /hr/
                    AccessRule("user:alice", "source:files", "deny", when='title == "x"'),
                ]
            )
        )
    assert engine.uncompilable_rules == 3
    assert "cannot be compiled (widened)" in caplog.text
    access = engine.filter_for(alice)
    assert not access.permits(row(path="/hr/other"))  # the whole prefix is denied
    assert not access.permits(row(path="/eng/a", source="files"))  # condition dropped
    assert access.permits(row(path="/eng/a", source="wiki"))


def test_admins_keys_and_cached_filters() -> None:
    engine = PolicyEngine.of(
        PolicySet.of(
            [
                AccessRule("group:eng", "collection:eng"),
                AccessRule("group:eng", "collection:eng/secret", "deny"),
                RoleLink("user:boss", "role:admin"),
            ]
        ),
        version=3,
        admin_principals=["user:root"],
    )
    root = engine.filter_for(Caller.of("user:root"))
    assert root.is_admin and root.permits(row(acl=())) and root.policy_version == 3
    assert engine.is_admin(Caller.of("user:boss", "group:eng"))
    assert engine.filter_for(Caller.of("user:boss")).permits(row(collection="eng/secret"))

    eng = Caller.of("user:e", "group:eng")
    access = engine.filter_for(eng)
    assert access.permits(row(collection="eng/a")) and not access.permits(
        row(collection="eng/secret/x")
    )
    assert not access.permits(row(collection="engineering"))
    assert engine.snapshot.cache  # compiled once per principal set and version
    narrowed = Caller(
        subject="user:e",
        principals=eng.principals,
        transport="internal",
        restrict_sources=frozenset({"wiki"}),
    )
    assert not engine.filter_for(narrowed).permits(row(collection="eng/a"))
    assert engine.filter_for(narrowed).permits(row(collection="eng/a", source="wiki"))
    engine.replace_policy(PolicySet(), version=4)
    assert not engine.filter_for(eng).permits(row(collection="eng/a"))
    assert access.policy_version == 3  # a filter keeps the version it was made at
