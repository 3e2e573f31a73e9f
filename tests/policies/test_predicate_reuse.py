"""A caller's SQL predicate is built once per set of columns and reused across statements;
columns of another table or alias get their own."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from policies.access import AuthzColumns
from policies.compiler import compile_predicate
from policies.rules import AccessRule, PolicySet
from policies.snapshot import PolicySnapshot
from server.db.models import Chunk, Document

POLICY = PolicySet.of(
    [
        AccessRule("group:eng", "collection:eng"),
        AccessRule("group:eng", "collection:eng/secret", "deny"),
        AccessRule("group:eng", "acl:source"),
    ]
)


def _sql(expression: ColumnElement[bool], table: Any) -> str:
    stmt = select(literal(1)).select_from(table).where(expression)
    return str(stmt.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def test_the_predicate_is_built_once_per_set_of_columns() -> None:
    where = compile_predicate(PolicySnapshot(1, POLICY), {"group:eng"})
    first = where(AuthzColumns.of_chunks(Chunk))
    assert where(AuthzColumns.of_chunks(Chunk)) is first
    on_documents = where(AuthzColumns.of_documents(Document))
    assert on_documents is not first
    assert "chunks.collection" in _sql(first, Chunk)
    assert "documents.collection" in _sql(on_documents, Document)
    # An alias is a table of its own: its predicate names the alias, never the base table.
    alias = aliased(Chunk, name="c2")
    on_alias = where(AuthzColumns.of_chunks(alias))
    assert on_alias is not first
    sql = _sql(on_alias, alias)
    assert "c2.collection" in sql and "chunks.collection" not in sql
    # The deny is part of every one of them.
    assert all("NOT" in _sql(e, t) for e, t in ((first, Chunk), (on_alias, alias)))


def test_past_the_memo_size_every_alias_still_gets_its_own_predicate() -> None:
    where = compile_predicate(PolicySnapshot(1, POLICY), {"group:eng"})
    for i in range(100):
        alias = aliased(Chunk, name=f"a{i}")
        assert f"a{i}.collection" in _sql(where(AuthzColumns.of_chunks(alias)), alias)
    assert where(AuthzColumns.of_chunks(Chunk)) is where(AuthzColumns.of_chunks(Chunk))


def test_with_a_source_disabled_the_predicate_is_still_one_object_per_columns() -> None:
    """Taking a source offline wraps every caller's predicate; the wrapper is built once
    per set of columns too (search statements are kept per predicate object), and it
    excludes the source."""
    from core.identity import Caller
    from policies.engine import PolicyEngine

    engine = PolicyEngine.of(POLICY, version=1, disabled_sources=["crm"])
    access = engine.filter_for(Caller.of("user:e", "group:eng"))
    first = access.where(AuthzColumns.of_chunks(Chunk))
    again = engine.filter_for(Caller.of("user:e", "group:eng"))
    assert again.where(AuthzColumns.of_chunks(Chunk)) is first
    sql = _sql(first, Chunk)
    assert "chunks.source NOT IN" in sql
    assert access.where(AuthzColumns.of_documents(Document)) is not first
    assert "documents.source NOT IN" in _sql(
        access.where(AuthzColumns.of_documents(Document)), Document
    )


def test_an_api_keys_narrowing_is_one_predicate_per_key_shape_and_never_anothers() -> None:
    """A key narrowed to sources or collections: its predicate is kept per snapshot too
    (search statements are kept per predicate object), and never shared with the same
    principals narrowed otherwise, or not narrowed at all."""
    from dataclasses import replace

    from core.identity import Caller
    from policies.engine import PolicyEngine

    engine = PolicyEngine.of(POLICY, version=1)
    person = Caller.of("user:e", "group:eng")
    wiki_key = replace(person, restrict_sources=frozenset({"wiki"}))
    crm_key = replace(person, restrict_sources=frozenset({"crm"}))
    eng_key = replace(person, restrict_collections=frozenset({"eng"}))

    def where(caller: Caller) -> ColumnElement[bool]:
        return engine.filter_for(caller).where(AuthzColumns.of_chunks(Chunk))

    assert where(wiki_key) is where(wiki_key)
    assert len({id(where(c)) for c in (person, wiki_key, crm_key, eng_key)}) == 4
    wiki_sql, crm_sql = _sql(where(wiki_key), Chunk), _sql(where(crm_key), Chunk)
    assert "chunks.source IN" in wiki_sql and "chunks.source IN" not in _sql(where(person), Chunk)
    wiki_params = where(wiki_key).compile().params.values()
    crm_params = where(crm_key).compile().params.values()
    assert ["wiki"] in wiki_params and ["crm"] not in wiki_params
    assert ["crm"] in crm_params and ["wiki"] not in crm_params
    assert wiki_sql == crm_sql  # the same shape, told apart by their values only
