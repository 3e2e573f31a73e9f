"""Policy administration: the one service behind ``kb policy`` and ``/admin/policies``.

Writes go through :class:`~policies.store.PolicyStore` (one audited, versioned, notified
transaction each) and then refresh this process's engine at once, so the next request
here sees the change without waiting for the notification. The test-file format for
:meth:`PolicyAdmin.run_tests`::

    tests:
      - as: [user:alice, group:hr]      # one principal or a list
        doc: 6f1c...                    # a stored document id, or:
        document:                       # a hypothetical document's attributes
          source: files
          collection: hr/payroll
          path: /hr/payroll/2024.xlsx
          level: 2
          acl: [group:hr]
          content_type: text/plain
          metadata: {region: eu}
        expect: allow                   # or deny
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from core.errors import InvalidRequest, NotFound
from core.identity import Caller, is_principal
from policies.access import RowAttributes
from policies.engine import PolicyEngine
from policies.explain import AccessDiff, Explanation, Reader, diff, explain, who_can
from policies.lint import LintIssue, lint
from policies.listener import refresh
from policies.rules import PolicyItem, PolicySet, dump_policy_yaml
from policies.snapshot import PolicySnapshot
from policies.store import Change, PolicyStore, StoredItem

DOCUMENT_KEYS = {"id", "source", "collection", "path", "level", "acl", "content_type", "metadata"}


@dataclass(frozen=True)
class TestOutcome:
    index: int
    principals: tuple[str, ...]
    target: str
    expected: str
    actual: str
    explanation: Explanation

    @property
    def passed(self) -> bool:
        return self.expected == self.actual


def parse_principals(values: str | Sequence[str]) -> list[str]:
    """``user:a,group:b`` or a list; every principal must carry its prefix."""
    items = values.split(",") if isinstance(values, str) else list(values)
    principals = [p.strip() for p in items if isinstance(p, str) and p.strip()]
    if not principals:
        raise InvalidRequest("give at least one principal (user:, email:, group:, svc:, role:)")
    bad = [p for p in principals if not is_principal(p)]
    if bad:
        raise InvalidRequest(f"principals need a prefix (user:, group:, ...): {', '.join(bad)}")
    return principals


def document_from_mapping(raw: Any, where: str) -> RowAttributes:
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{where}: document must be a mapping of attributes")
    unknown = set(raw) - DOCUMENT_KEYS
    if unknown:
        raise InvalidRequest(f"{where}: unknown document keys {sorted(map(str, unknown))}")
    acl = raw.get("acl") or []
    metadata = raw.get("metadata") or {}
    level = raw.get("level", 0)
    if not isinstance(acl, list) or not all(isinstance(a, str) for a in acl):
        raise InvalidRequest(f"{where}: acl must be a list of principals")
    if not isinstance(metadata, Mapping):
        raise InvalidRequest(f"{where}: metadata must be a mapping")
    if not isinstance(level, int) or isinstance(level, bool):
        raise InvalidRequest(f"{where}: level must be an integer")
    return RowAttributes(
        document_id=str(raw.get("id") or "00000000-0000-0000-0000-000000000000"),
        source=str(raw.get("source", "")),
        collection=str(raw.get("collection", "")),
        path=str(raw.get("path", "")),
        level=level,
        acl=tuple(acl),
        content_type=str(raw.get("content_type", "")),
        metadata=dict(metadata),
    )


def _caller_sets(callers: Sequence[Sequence[str]] | None) -> list[frozenset[str]] | None:
    if callers is None:
        return None
    return [frozenset(parse_principals(c)) for c in callers]


class PolicyAdmin:
    def __init__(self, store: PolicyStore, engine: PolicyEngine) -> None:
        self.store = store
        self.engine = engine

    # --- reads and writes of the stored policy ------------------------------------------

    async def list_items(self) -> tuple[int, list[StoredItem]]:
        return await self.store.list_items()

    async def export(self) -> str:
        _, policy = await self.store.load()
        return dump_policy_yaml(policy)

    async def add(self, items: Sequence[PolicyItem], actor: Caller) -> Change:
        change = await self.store.add(items, actor)
        await refresh(self.engine, self.store)
        return change

    async def remove(self, ids: Sequence[int], actor: Caller) -> Change:
        change = await self.store.remove(ids, actor)
        await refresh(self.engine, self.store)
        return change

    async def import_policy(self, policy: PolicySet, actor: Caller, *, replace: bool) -> Change:
        change = await self.store.import_policy(policy, actor, replace=replace)
        await refresh(self.engine, self.store)
        return change

    async def lint_stored(self) -> list[LintIssue]:
        _, policy = await self.store.load()
        return lint(policy)

    # --- questions -------------------------------------------------------------------------

    async def _document(self, document_id: str) -> RowAttributes:
        doc = await self.store.document(document_id)
        if doc is None:
            raise NotFound(f"no document with id {document_id}")
        return doc

    def _snapshot(self, policy: PolicySet | None) -> PolicySnapshot:
        current = self.engine.snapshot
        if policy is None:
            return current
        return PolicySnapshot(-1, policy, current.admin_principals)

    async def explain(
        self, principals: Sequence[str], document_id: str, policy: PolicySet | None = None
    ) -> Explanation:
        return explain(self._snapshot(policy), principals, await self._document(document_id))

    async def who_can(
        self, document_id: str, callers: Sequence[Sequence[str]] | None = None
    ) -> list[Reader]:
        """Caller sets that can read the document (``callers``: judge exactly these)."""
        sets = _caller_sets(callers)
        return who_can(self.engine.snapshot, await self._document(document_id), sets)

    async def diff(
        self, proposed: PolicySet, callers: Sequence[Sequence[str]] | None = None
    ) -> list[AccessDiff]:
        return await diff(self.store, self.engine, proposed, _caller_sets(callers))

    async def run_tests(self, data: Any, policy: PolicySet | None = None) -> list[TestOutcome]:
        """Check expectations (see the module docstring) against the stored or given policy."""
        cases = data.get("tests") if isinstance(data, Mapping) else None
        if not isinstance(cases, list) or not cases:
            raise InvalidRequest("a test file holds a non-empty list under 'tests'")
        snapshot = self._snapshot(policy)
        engine = PolicyEngine(snapshot)
        out = []
        for index, case in enumerate(cases, start=1):
            where = f"test {index}"
            if not isinstance(case, Mapping):
                raise InvalidRequest(f"{where}: must be a mapping with as, doc/document, expect")
            unknown = set(case) - {"as", "doc", "document", "expect"}
            if unknown:
                raise InvalidRequest(f"{where}: unknown keys {sorted(map(str, unknown))}")
            principals = parse_principals(case.get("as") or [])
            expected = case.get("expect")
            if expected not in ("allow", "deny"):
                raise InvalidRequest(f"{where}: expect must be allow or deny")
            if ("doc" in case) == ("document" in case):
                raise InvalidRequest(f"{where}: give exactly one of doc (an id) or document")
            access = engine.filter_for(Caller.of(*principals, transport="internal"))
            if "doc" in case:
                target = str(case["doc"])
                doc = await self._document(target)
                allowed = await self.store.is_readable(access, target)
            else:
                doc = document_from_mapping(case["document"], where)
                target = (
                    "document " + yaml.safe_dump(case["document"], default_flow_style=True).strip()
                )
                allowed = access.permits(doc)
            why = explain(snapshot, principals, doc)
            actual = "allow" if allowed else "deny"
            out.append(TestOutcome(index, tuple(principals), target, expected, actual, why))
        return out


__all__ = [
    "PolicyAdmin",
    "TestOutcome",
    "document_from_mapping",
    "parse_principals",
]
