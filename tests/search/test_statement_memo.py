"""Statements built once per caller predicate and shape: found only by the very same
predicate object, never by an equal-looking one, and bounded."""

from __future__ import annotations

from sqlalchemy import literal_column

from core.identity import Caller
from policies.engine import PolicyEngine
from policies.rules import parse_policy_yaml
from server.search import SearchFilters
from server.search.repository import _vector_statement, chunk_predicate
from server.search.statement_memo import StatementMemo


def test_found_by_the_same_anchor_and_shape_only() -> None:
    memo = StatementMemo()
    built: list[str] = []

    def build(name: str) -> str:
        built.append(name)
        return name

    one, twin = literal_column("acl"), literal_column("acl")  # equal SQL, two objects
    assert memo.get(one, "s", lambda: build("a")) == "a"
    assert memo.get(one, "s", lambda: build("b")) == "a"  # reused
    assert memo.get(twin, "s", lambda: build("c")) == "c"  # another object: its own
    assert memo.get(one, "t", lambda: build("d")) == "d"  # another shape: its own
    assert built == ["a", "c", "d"]


def test_bounded_least_recently_used_first() -> None:
    memo = StatementMemo(max_entries=2)
    anchors = [object(), object(), object()]
    for i, anchor in enumerate(anchors):
        memo.get(anchor, "s", lambda i=i: i)
    assert len(memo) == 2
    assert memo.get(anchors[0], "s", lambda: "rebuilt") == "rebuilt"
    assert memo.get(anchors[2], "s", lambda: "rebuilt") == 2


POLICY = """
rules:
  - {subject: group:eng, object: "collection:eng"}
  - {subject: group:hr, object: "collection:hr"}
  - {subject: group:hr, object: "acl:source"}
"""


def test_each_caller_gets_a_statement_around_its_own_predicate() -> None:
    engine = PolicyEngine.of(parse_policy_yaml(POLICY), version=1)
    eng = engine.filter_for(Caller.of("user:e", "group:eng"))
    hr = engine.filter_for(Caller.of("user:h", "group:hr"))
    filters = SearchFilters()
    for access in (eng, hr):
        # The engine builds one caller's predicate once, so its statements are reused...
        assert chunk_predicate(access) is chunk_predicate(access)
        first = _vector_statement(access, filters, exact=False)
        assert _vector_statement(access, filters, exact=False) is first
        assert _vector_statement(access, filters, exact=True) is not first
        assert _vector_statement(access, SearchFilters(sources=("wiki",)), False) is not first
    # ... and two callers never share one: each holds its own rules' values.
    eng_sql = _vector_statement(eng, filters, False).compile()
    hr_sql = _vector_statement(hr, filters, False).compile()
    assert "eng" in eng_sql.params.values() and "hr" not in eng_sql.params.values()
    assert "hr" in hr_sql.params.values() and "eng" not in hr_sql.params.values()
    assert "acl &&" in str(hr_sql) and "acl &&" not in str(eng_sql)
    # A new policy version is a new predicate: nothing of the old one is reused.
    newer = PolicyEngine.of(parse_policy_yaml(POLICY), version=2)
    eng2 = newer.filter_for(Caller.of("user:e", "group:eng"))
    assert chunk_predicate(eng2) is not chunk_predicate(eng)
    assert _vector_statement(eng2, filters, False) is not _vector_statement(eng, filters, False)
