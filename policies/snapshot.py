"""An immutable policy snapshot: the stored rules at one version, normalised for enforcement.

Normalisation is where "fail closed" happens, once per snapshot:

* a rule whose selector, condition or ``max_level`` cannot be compiled is, for an
  **allow**, dropped; for a **deny**, kept without its conditions (and without
  ``max_level``) over the widest selector it could mean (``*`` for an unknown selector,
  the literal prefix before a wildcard for a path), so it denies at least what was meant;
* a rule whose subject is not a prefixed principal or role can never match a caller.

Each such rule is logged and counted (so are stored rows the store could not read, see
:class:`~policies.rules.Unreadable`). The compiler (SQL) and the Casbin re-check both work
from :attr:`PolicySnapshot.rules`, the normalised list, so they agree exactly. The
snapshot also carries the set of disabled sources, so switching a source off takes it
offline on every surface with one swap.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from core.errors import PolicyError
from policies.rules import AccessRule, Effect, PolicySet
from policies.selectors import (
    Condition,
    Selector,
    parse_conditions,
    parse_selector,
    widest_reading,
)

log = logging.getLogger(__name__)

ADMIN_ROLE = "role:admin"
#: Longest role or collection chain followed (hops). Casbin's role manager is built with
#: the same bound, so the SQL and the re-check see the same closure; lint refuses deeper.
MAX_HIERARCHY_DEPTH = 32


@dataclass(frozen=True)
class EffectiveRule:
    """A rule as enforced: parsed, and possibly narrowed (allow) or widened (deny)."""

    rule: AccessRule
    selector: Selector
    conditions: tuple[Condition, ...]
    max_level: int | None
    problem: str = ""  # why the rule was widened, if it was

    @property
    def subject(self) -> str:
        return self.rule.subject

    @property
    def effect(self) -> Effect:
        return self.rule.effect

    def casbin_row(self) -> list[str]:
        """``p`` values for the enforcer: sub, obj, eft, lvl, cond (all canonical)."""
        level = "" if self.max_level is None else str(self.max_level)
        cond = " && ".join(str(c) for c in self.conditions)
        return [self.rule.subject, str(self.selector), self.rule.effect, level, cond]


@dataclass(frozen=True)
class Problem:
    rule: AccessRule
    message: str
    consequence: str  # "dropped" | "widened"


def normalise(rule: AccessRule) -> tuple[EffectiveRule | None, str]:
    """The rule as enforced, and what was wrong with it (empty if nothing)."""
    errors: list[str] = []
    try:
        selector = parse_selector(rule.object)
    except PolicyError as exc:
        errors.append(str(exc))
        selector = widest_reading(rule.object)
    try:
        conditions = parse_conditions(rule.when)
    except PolicyError as exc:
        errors.append(str(exc))
        conditions = ()
    max_level = rule.max_level
    if rule.effect == "deny" and max_level is not None:
        errors.append("max_level applies to allow rules only (use when: level >= N on a deny)")
        max_level = None
    if not errors:
        return EffectiveRule(rule, selector, conditions, max_level), ""
    problem = "; ".join(errors)
    if rule.effect == "allow":
        return None, problem
    # A broken deny denies its widest reading, unconditionally.
    return EffectiveRule(rule, selector, (), None, problem), problem


def _adjacency(pairs: Iterable[tuple[str, str]]) -> Mapping[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for a, b in pairs:
        targets = out.setdefault(a, [])
        if b not in targets:
            targets.append(b)
    return MappingProxyType({k: tuple(v) for k, v in out.items()})


def bounded_reach(
    start: Iterable[str], edges: Mapping[str, tuple[str, ...]]
) -> dict[str, str | None]:
    """Nodes reachable from ``start`` in at most MAX_HIERARCHY_DEPTH hops, with the node
    each was first reached from (``None`` for a start node), for explaining chains."""
    seen: dict[str, str | None] = dict.fromkeys(start)
    frontier = deque((n, 0) for n in seen)
    while frontier:
        node, depth = frontier.popleft()
        if depth >= MAX_HIERARCHY_DEPTH:
            continue
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen[nxt] = node
                frontier.append((nxt, depth + 1))
    return seen


@dataclass(frozen=True)
class PolicySnapshot:
    version: int
    policy: PolicySet
    admin_principals: frozenset[str] = frozenset()
    #: Sources switched off (``enabled: false`` in the configuration or the sources table):
    #: their documents are served to nobody, admins included, in SQL and in the re-check.
    disabled_sources: frozenset[str] = frozenset()
    rules: tuple[EffectiveRule, ...] = field(init=False)
    problems: tuple[Problem, ...] = field(init=False)
    role_edges: Mapping[str, tuple[str, ...]] = field(init=False)  # member -> roles
    collection_children: Mapping[str, tuple[str, ...]] = field(init=False)  # parent -> children
    by_subject: Mapping[str, tuple[EffectiveRule, ...]] = field(init=False)
    cache: dict[Any, Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        rules: list[EffectiveRule] = []
        # Rows the store could not read come first: counted and logged like the rest.
        problems = [Problem(u.rule, u.message, u.consequence) for u in self.policy.unreadable]
        for rule in self.policy.rules:
            # An unprefixed subject is a lint error but is kept as written: a role link may
            # still reach it, and Casbin would apply it, so the SQL must too.
            effective, problem = normalise(rule)
            if effective is not None:
                rules.append(effective)
            if problem:
                problems.append(Problem(rule, problem, "widened" if effective else "dropped"))
        links = [(link.member, link.role) for link in self.policy.roles]
        links += [(p, ADMIN_ROLE) for p in sorted(self.admin_principals)]
        by_subject: dict[str, list[EffectiveRule]] = {}
        for r in rules:
            by_subject.setdefault(r.subject, []).append(r)
        put = object.__setattr__  # frozen dataclass: derived fields are set once, here
        put(self, "rules", tuple(rules))
        put(self, "problems", tuple(problems))
        put(self, "role_edges", _adjacency(links))
        put(
            self,
            "collection_children",
            _adjacency((c.parent, c.child) for c in self.policy.collections),
        )
        put(self, "by_subject", MappingProxyType({k: tuple(v) for k, v in by_subject.items()}))
        put(self, "cache", {})
        for p in problems:
            log.warning(
                "policy v%s: rule [%s] cannot be compiled (%s): %s",
                self.version,
                p.rule.describe(),
                p.consequence,
                p.message,
            )

    def closure(self, principals: Iterable[str]) -> dict[str, str | None]:
        """The principals and every role they hold, each with the node it came through."""
        return bounded_reach(principals, self.role_edges)

    def collection_scope(self, name: str) -> list[str]:
        """``name`` and every collection linked below it by g2 (not "/" nesting)."""
        return list(bounded_reach([name], self.collection_children))

    def rules_for(self, closure: Iterable[str]) -> list[EffectiveRule]:
        out: list[EffectiveRule] = []
        for subject in closure:
            out.extend(self.by_subject.get(subject, ()))
        return out

    def is_admin(self, principals: Iterable[str]) -> bool:
        return ADMIN_ROLE in self.closure(principals)


__all__ = [
    "ADMIN_ROLE",
    "MAX_HIERARCHY_DEPTH",
    "EffectiveRule",
    "PolicySnapshot",
    "Problem",
    "bounded_reach",
    "normalise",
]
