"""The access policy (admin only): the use cases behind ``/admin/policies`` and ``kb policy``.

Changes run in one transaction that holds the policy change, its new version, the
``pg_notify`` and the audit row (:meth:`AuditRecorder.change`); after the commit this
process's engine is refreshed at once, so the next request here sees the change. Reads
and questions (list, export, lint, test, explain, who-can, diff) are audited as reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from policies.admin import PolicyAdmin, TestOutcome
from policies.capability import AdminCaller
from policies.explain import AccessDiff, Explanation, Reader
from policies.lint import LintIssue, lint
from policies.listener import refresh
from policies.rules import PolicyItem, PolicySet
from policies.store import Change, StoredItem

if TYPE_CHECKING:
    from server.runtime import Runtime


def _service(rt: Runtime) -> PolicyAdmin:
    return PolicyAdmin(rt.policy_store, rt.policies)


def _changed(change: Change) -> dict[str, Any]:
    return {"version": change.version, "added": change.added, "removed": change.removed}


async def list_items(rt: Runtime, admin: AdminCaller) -> tuple[int, list[StoredItem]]:
    async with rt.audit.call(admin.caller, method="policy.list") as rec:
        version, items = await _service(rt).list_items()
        rec.policy_version = version
    return version, items


async def add_items(rt: Runtime, admin: AdminCaller, items: Sequence[PolicyItem]) -> Change:
    async with rt.audit.change(
        admin.caller, method="policy.add", arguments={"add": [i.describe() for i in items]}
    ) as scope:
        change = await rt.policy_store.add(items, admin.caller, session=scope.session)
        scope.record.policy_version = change.version
        scope.record.result.update(_changed(change))
    await refresh(rt.policies, rt.policy_store)
    return change


async def remove_items(rt: Runtime, admin: AdminCaller, ids: Sequence[int]) -> Change:
    async with rt.audit.change(
        admin.caller, method="policy.remove", arguments={"remove_ids": sorted(set(ids))}
    ) as scope:
        change = await rt.policy_store.remove(ids, admin.caller, session=scope.session)
        scope.record.policy_version = change.version
        scope.record.result.update(_changed(change))
    await refresh(rt.policies, rt.policy_store)
    return change


async def import_policy(
    rt: Runtime, admin: AdminCaller, policy: PolicySet, *, replace: bool
) -> Change:
    async with rt.audit.change(
        admin.caller,
        method="policy.replace" if replace else "policy.import",
        arguments={"items": [i.describe() for i in policy.items()], "replace": replace},
    ) as scope:
        change = await rt.policy_store.import_policy(
            policy, admin.caller, replace=replace, session=scope.session
        )
        scope.record.policy_version = change.version
        scope.record.result.update(_changed(change))
    await refresh(rt.policies, rt.policy_store)
    return change


async def export_policy(rt: Runtime, admin: AdminCaller) -> str:
    async with rt.audit.call(admin.caller, method="policy.export"):
        return await _service(rt).export()


async def lint_policy(
    rt: Runtime, admin: AdminCaller, policy: PolicySet | None = None
) -> list[LintIssue]:
    """Lint ``policy``, or the stored one."""
    async with rt.audit.call(
        admin.caller, method="policy.lint", arguments={"stored": policy is None}
    ):
        return lint(policy) if policy is not None else await _service(rt).lint_stored()


async def run_tests(
    rt: Runtime, admin: AdminCaller, data: Any, policy: PolicySet | None = None
) -> list[TestOutcome]:
    async with rt.audit.call(
        admin.caller,
        method="policy.test",
        arguments={"tests": data, "proposed_policy": policy is not None},
    ) as rec:
        outcomes = await _service(rt).run_tests(data, policy)
        rec.result["passed"] = all(o.passed for o in outcomes)
    return outcomes


async def explain(
    rt: Runtime,
    admin: AdminCaller,
    principals: Sequence[str],
    document_id: str,
    policy: PolicySet | None = None,
) -> Explanation:
    async with rt.audit.call(
        admin.caller,
        method="policy.explain",
        target=document_id,
        arguments={"as": list(principals), "proposed_policy": policy is not None},
    ) as rec:
        rec.documents([document_id])
        return await _service(rt).explain(principals, document_id, policy)


async def who_can(rt: Runtime, admin: AdminCaller, document_id: str) -> list[Reader]:
    async with rt.audit.call(admin.caller, method="policy.who_can", target=document_id) as rec:
        rec.documents([document_id])
        return await _service(rt).who_can(document_id)


async def diff(rt: Runtime, admin: AdminCaller, proposed: PolicySet) -> list[AccessDiff]:
    from core.errors import PolicyError

    async with rt.audit.call(
        admin.caller, method="policy.diff", arguments={"items": len(proposed)}
    ):
        problems = [i for i in lint(proposed) if i.severity == "error"]
        if problems:
            raise PolicyError(
                "the proposed policy does not lint clean: " + "; ".join(map(str, problems[:5]))
            )
        return await _service(rt).diff(proposed)


__all__ = [
    "add_items",
    "diff",
    "explain",
    "export_policy",
    "import_policy",
    "lint_policy",
    "list_items",
    "remove_items",
    "run_tests",
    "who_can",
]
