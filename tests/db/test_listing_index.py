"""list_sources' counts for a caller allowed every live document are an index-only scan.

Migration 0009: a partial index on documents (source, collection) WHERE deleted_at IS
NULL. The statement is the repository's own (``counts_statement``), with the predicate the
policy engine compiles for an admin, and for everyone once a source is switched off. With
sequential scans disabled the planner must still find an index-only scan: if the index
were gone, or the statement stopped matching it (another grouping, the live-document
condition written differently), the plan would not name it.
"""

from __future__ import annotations

import pytest

from core.identity import Caller
from policies.engine import PolicyEngine
from policies.rules import AccessRule, PolicySet
from server.search.repository import counts_statement
from tests.db.test_filter_indexes import _plan

INDEX = "Index Only Scan using ix_documents_live_source_collection"


@pytest.mark.parametrize("disabled", [(), ("hr",)])
def test_an_admins_counts_read_only_the_listing_index(
    fresh_database: str, disabled: tuple[str, ...]
) -> None:
    engine = PolicyEngine.of(
        PolicySet.of([]), version=1, admin_principals=["user:root"], disabled_sources=disabled
    )
    access = engine.filter_for(Caller.of("user:root"))
    assert access.is_admin
    plan = _plan(fresh_database, counts_statement(access))
    assert INDEX in plan, plan
    assert "Sort" not in plan, plan  # grouped in index order


def test_a_restricted_caller_cannot_use_it_alone(fresh_database: str) -> None:
    """The index holds no authorization column: an ACL predicate must read more than it
    (documents the limit the migration states, so a change of it is noticed)."""
    engine = PolicyEngine.of(PolicySet.of([AccessRule("group:eng", "acl:source")]), version=1)
    access = engine.filter_for(Caller.of("user:erin", "group:eng"))
    assert not access.is_admin
    plan = _plan(fresh_database, counts_statement(access))
    assert INDEX not in plan, plan
