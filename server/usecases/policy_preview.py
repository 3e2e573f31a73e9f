"""The preview of a policy change before it is applied (admin only): lint the policy the
change would produce and, when it lints clean, the access it grants or takes away per
principal. The console shows it before its Apply button; nothing is stored here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from policies.capability import AdminCaller
from policies.explain import AccessDiff
from policies.lint import LintIssue
from policies.rules import PolicyItem, PolicySet
from server.usecases import policy_admin

if TYPE_CHECKING:
    from server.runtime import Runtime


@dataclass(frozen=True)
class Preview:
    proposed: PolicySet
    issues: list[LintIssue]
    #: None when the proposed policy has lint errors (it could not be applied).
    diffs: list[AccessDiff] | None

    @property
    def ok(self) -> bool:
        return self.diffs is not None


async def preview(
    rt: Runtime,
    admin: AdminCaller,
    *,
    add: Sequence[PolicyItem] = (),
    remove_ids: Sequence[int] = (),
    replace_with: PolicySet | None = None,
) -> Preview:
    """The stored policy with ``add`` merged and ``remove_ids`` removed, or ``replace_with``."""
    if replace_with is not None:
        proposed = replace_with
    else:
        _, stored = await policy_admin.list_items(rt, admin)
        drop = set(remove_ids)
        kept = [s.item for s in stored if s.id not in drop]
        proposed = PolicySet.of([*kept, *add])
    issues = await policy_admin.lint_policy(rt, admin, proposed)
    if any(i.severity == "error" for i in issues):
        return Preview(proposed, issues, None)
    return Preview(proposed, issues, await policy_admin.diff(rt, admin, proposed))


__all__ = ["Preview", "preview"]
