"""Why a document is (not) readable, who can read it, and what a policy change would do.

* :func:`explain`: every rule of the caller's closure that matches the document, allow
  or deny, each with its role chain (``user:alice -> role:hr -> role:staff``), plus the
  caller's rules that were dropped or widened because they cannot be compiled.
* :func:`who_can`: the principals that can read a document, among the subjects of rules,
  the members of role links, the document's own ACL principals and the bootstrap admins.
  Each is judged alone; a deny on a group still applies when a caller carries that group.
* :func:`diff`: for a proposed policy, which documents each principal gains or loses
  (principals whose access can change are exactly the rule subjects and link members).

All three evaluate the snapshot's normalised rules (what is enforced) with the same
selector semantics as the SQL compiler and the Casbin re-check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.identity import Caller, is_principal
from policies.access import RowAttributes
from policies.engine import PolicyEngine
from policies.rules import AccessRule, PolicySet
from policies.selectors import collection_prefixes, conditions_hold
from policies.snapshot import ADMIN_ROLE, EffectiveRule, PolicySnapshot, Problem
from policies.store import PolicyStore


@dataclass(frozen=True)
class RuleHit:
    rule: AccessRule
    effect: str
    chain: tuple[str, ...]  # from one of the caller's principals to the rule's subject
    note: str = ""  # set when the rule is enforced in a widened form

    def describe(self) -> str:
        text = f"{self.rule.describe()}  via {' -> '.join(self.chain)}"
        return f"{text}  ({self.note})" if self.note else text


@dataclass(frozen=True)
class Explanation:
    allowed: bool
    reason: str
    hits: tuple[RuleHit, ...] = ()
    admin_chain: tuple[str, ...] = ()
    ignored: tuple[Problem, ...] = field(default_factory=tuple)


def _chain(closure: dict[str, str | None], node: str) -> tuple[str, ...]:
    out = [node]
    while (prev := closure.get(out[-1])) is not None:
        out.append(prev)
    return tuple(reversed(out))


def rule_matches(
    snapshot: PolicySnapshot, rule: EffectiveRule, closure: Iterable[str], doc: RowAttributes
) -> bool:
    sel = rule.selector
    if sel.kind == "collection":
        scope = set(snapshot.collection_scope(sel.value))
        hit = any(p in scope for p in collection_prefixes(doc.collection))
    elif sel.kind == "path":
        hit = doc.path.startswith(sel.value)
    elif sel.kind == "source":
        hit = doc.source == sel.value
    elif sel.kind == "doc":
        hit = doc.document_id.lower() == sel.value
    elif sel.kind == "acl":
        names = set(closure)
        hit = any(a in names for a in doc.acl)
    else:
        hit = True
    if not hit or not conditions_hold(rule.conditions, doc):
        return False
    return rule.max_level is None or doc.level <= rule.max_level


def explain(snapshot: PolicySnapshot, principals: Iterable[str], doc: RowAttributes) -> Explanation:
    closure = snapshot.closure(principals)
    subjects = set(closure)
    ignored = tuple(p for p in snapshot.problems if p.rule.subject in subjects)
    if ADMIN_ROLE in closure:
        chain = _chain(closure, ADMIN_ROLE)
        return Explanation(True, "admin: reads every document", (), chain, ignored)
    hits = tuple(
        RuleHit(r.rule, r.effect, _chain(closure, r.subject), r.problem and f"widened: {r.problem}")
        for r in snapshot.rules_for(closure)
        if rule_matches(snapshot, r, closure, doc)
    )
    if any(h.effect == "deny" for h in hits):
        return Explanation(
            False, "denied: a deny rule matches (deny beats allow)", hits, (), ignored
        )
    if hits:
        return Explanation(True, "allowed", hits, (), ignored)
    return Explanation(False, "denied: no allow rule matches", hits, (), ignored)


@dataclass(frozen=True)
class Reader:
    principal: str
    explanation: Explanation


def candidate_principals(policy: PolicySet, extra: Iterable[str] = ()) -> list[str]:
    names = {r.subject for r in policy.rules} | {g.member for g in policy.roles} | set(extra)
    return sorted(n for n in names if is_principal(n) and not n.startswith("role:"))


def who_can(snapshot: PolicySnapshot, doc: RowAttributes) -> list[Reader]:
    candidates = candidate_principals(snapshot.policy, [*doc.acl, *snapshot.admin_principals])
    out = []
    for principal in candidates:
        why = explain(snapshot, [principal], doc)
        if why.allowed:
            out.append(Reader(principal, why))
    return out


@dataclass(frozen=True)
class AccessDiff:
    principal: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]


async def diff(store: PolicyStore, engine: PolicyEngine, proposed: PolicySet) -> list[AccessDiff]:
    """Per principal, the documents the proposed policy would add or remove."""
    current = engine.snapshot
    after = PolicyEngine.of(proposed, version=-1, admin_principals=current.admin_principals)
    out = []
    for principal in candidate_principals(current.policy, candidate_principals(proposed)):
        caller = Caller.of(principal, transport="internal")
        before_ids = await store.readable_document_ids(engine.filter_for(caller))
        after_ids = await store.readable_document_ids(after.filter_for(caller))
        if before_ids != after_ids:
            gained = tuple(sorted(after_ids - before_ids))
            lost = tuple(sorted(before_ids - after_ids))
            out.append(AccessDiff(principal, gained, lost))
    return out


__all__ = [
    "AccessDiff",
    "Explanation",
    "Reader",
    "RuleHit",
    "candidate_principals",
    "diff",
    "explain",
    "rule_matches",
    "who_can",
]
