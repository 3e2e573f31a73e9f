"""Policy lint: what the store refuses to save, and what ``kb policy lint`` reports.

Errors (a policy with any is refused):

* a rule that cannot be compiled: unknown or malformed selector, a path with a wildcard,
  a condition outside the whitelist, ``max_level`` on a deny;
* a subject, role member or role without a principal prefix (``user:``, ``email:``,
  ``group:``, ``svc:``, ``role:``), or a role link whose target is not ``role:NAME``;
* a cycle in the role hierarchy or in the collection hierarchy, or a chain longer than
  :data:`~policies.snapshot.MAX_HIERARCHY_DEPTH` links;
* a malformed collection name in a collection link.

Warnings: a role that has rules but no members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from core.errors import PolicyError
from core.identity import is_principal
from policies.rules import PolicySet
from policies.selectors import parse_selector
from policies.snapshot import MAX_HIERARCHY_DEPTH, normalise


@dataclass(frozen=True)
class LintIssue:
    severity: Literal["error", "warning"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def lint(policy: PolicySet) -> list[LintIssue]:
    issues: list[LintIssue] = []
    for rule in policy.rules:
        where = f"rule [{rule.describe()}]"
        if not is_principal(rule.subject):
            issues.append(
                LintIssue("error", where, "subject needs a prefix (user:, group:, role:, ...)")
            )
        _, problem = normalise(rule)
        if problem:
            issues.append(LintIssue("error", where, f"cannot be compiled: {problem}"))
    for link in policy.roles:
        where = f"role link [{link.describe()}]"
        if not is_principal(link.member):
            issues.append(
                LintIssue("error", where, "member needs a prefix (user:, group:, role:, ...)")
            )
        if not (link.role.startswith("role:") and is_principal(link.role)):
            issues.append(LintIssue("error", where, "the target must be a role (role:NAME)"))
        if link.member == link.role:
            issues.append(LintIssue("error", where, "a role cannot hold itself"))
    for clink in policy.collections:
        where = f"collection link [{clink.describe()}]"
        for name in (clink.child, clink.parent):
            try:
                parse_selector(f"collection:{name}")
            except PolicyError as exc:
                issues.append(LintIssue("error", where, str(exc)))
        if clink.child == clink.parent:
            issues.append(LintIssue("error", where, "a collection cannot sit below itself"))
    issues += _graph_issues("role hierarchy", [(g.member, g.role) for g in policy.roles])
    issues += _graph_issues(
        "collection hierarchy", [(c.child, c.parent) for c in policy.collections]
    )
    members = {g.role for g in policy.roles}
    for role in sorted({r.subject for r in policy.rules if r.subject.startswith("role:")}):
        if role not in members and role != "role:admin":
            issues.append(LintIssue("warning", role, "has rules but no members"))
    return issues


def errors(policy: PolicySet) -> list[LintIssue]:
    return [i for i in lint(policy) if i.severity == "error"]


def _graph_issues(name: str, edges: Iterable[tuple[str, str]]) -> list[LintIssue]:
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        if a != b:  # self-links are reported above
            graph.setdefault(a, []).append(b)
    issues: list[LintIssue] = []
    cycles = _cycles(graph)
    for cycle in cycles:
        issues.append(LintIssue("error", name, "cycle: " + " -> ".join(cycle)))
    if not cycles:
        depth = _longest_chain(graph)
        if depth > MAX_HIERARCHY_DEPTH:
            issues.append(
                LintIssue("error", name, f"a chain of {depth} links exceeds {MAX_HIERARCHY_DEPTH}")
            )
    return issues


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """One representative cycle per back edge found by an iterative depth-first search."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, i = stack[-1]
            nexts = graph.get(node, [])
            if i == len(nexts):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, i + 1)
            nxt = nexts[i]
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
                path.append(nxt)
    return found


def _longest_chain(graph: Mapping[str, list[str]]) -> int:
    """Links on the longest path of an acyclic graph (memoised, iterative)."""
    memo: dict[str, int] = {}
    for root in graph:
        stack = [root]
        while stack:
            node = stack[-1]
            pending = [n for n in graph.get(node, []) if n not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            memo[node] = max((memo[n] + 1 for n in graph.get(node, [])), default=0)
    return max(memo.values(), default=0)


__all__ = ["LintIssue", "errors", "lint"]
