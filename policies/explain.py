"""Why a document is (not) readable, who can read it, and what a policy change would do.

* :func:`explain`: every rule of the caller's closure that matches the document, allow
  or deny, each with its role chain (``user:alice -> role:hr -> role:staff``), plus the
  caller's rules that were dropped or widened because they cannot be compiled.
* :func:`who_can`: the caller principal sets that can read a document;
* :func:`diff`: for a proposed policy, which documents each caller set gains or loses.

Both judge principal **sets as callers carry them**, never one principal alone: a caller
holding ``user:alice`` and ``group:contractors`` is denied by a deny on the group even
when a rule allows alice. The sets judged (:func:`caller_sets`) are, over the principals
the policy and the document name (rule subjects, role-link members, ACL principals,
bootstrap admins; roles are held, never carried):

* each principal alone (``user:``, ``email:``, ``svc:``, ``group:``);
* each ``user:`` or ``email:`` principal together with each group (a token brings its
  groups along; ``svc:`` callers carry no groups);

or exactly the sets an administrator passes. A set is reported when its answer says
something its members alone do not: ``who_can`` lists the smallest reading sets, each
with the principals that, carried along, turn it into a deny (``denied_with``);
``diff`` lists a pair only when it changes differently from each of its members alone.

All three evaluate the snapshot's normalised rules (what is enforced) with the same
selector semantics as the SQL compiler and the Casbin re-check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from core.errors import InvalidRequest
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


#: More caller sets than this and the question must be asked with explicit sets.
MAX_CALLER_SETS = 20_000

CallerSet = frozenset[str]


def candidate_principals(policy: PolicySet, extra: Iterable[str] = ()) -> list[str]:
    names = {r.subject for r in policy.rules} | {g.member for g in policy.roles} | set(extra)
    return sorted(n for n in names if is_principal(n) and not n.startswith("role:"))


def caller_sets(principals: Iterable[str]) -> list[CallerSet]:
    """Every set judged: each principal alone, and each user/e-mail with each group."""
    names = sorted(set(principals))
    groups = [n for n in names if n.startswith("group:")]
    people = [n for n in names if n.startswith(("user:", "email:"))]
    out: list[CallerSet] = [frozenset([n]) for n in names]
    out += [frozenset([p, g]) for p in people for g in groups]
    if len(out) > MAX_CALLER_SETS:
        raise InvalidRequest(
            f"{len(out)} principal combinations to judge (limit {MAX_CALLER_SETS}); "
            "name the caller sets to check explicitly"
        )
    return out


def _label(principals: Iterable[str]) -> str:
    return ",".join(sorted(principals))


@dataclass(frozen=True)
class Reader:
    principals: tuple[str, ...]
    explanation: Explanation
    #: Principals whose addition to this set (as a judged set) denies the document.
    denied_with: tuple[str, ...] = ()

    @property
    def principal(self) -> str:
        """The set as one string, ``user:alice,group:eng`` (the ``--as`` format)."""
        return _label(self.principals)


def who_can(
    snapshot: PolicySnapshot, doc: RowAttributes, callers: Iterable[CallerSet] | None = None
) -> list[Reader]:
    """The smallest caller sets that can read ``doc`` (see the module docstring)."""
    if callers is None:
        names = candidate_principals(snapshot.policy, [*doc.acl, *snapshot.admin_principals])
        sets = caller_sets(names)
    else:
        sets = list(dict.fromkeys(callers))
    if doc.source in snapshot.disabled_sources:
        return []  # a disabled source is served to nobody
    verdict = {s: explain(snapshot, s, doc) for s in sets}
    names = sorted({p for s in sets for p in s})
    out = []
    for s in sorted(sets, key=lambda s: (len(s), _label(s))):
        why = verdict[s]
        if not why.allowed:
            continue
        members = [frozenset([p]) for p in s] if len(s) > 1 else []
        if any(m in verdict and verdict[m].allowed for m in members):
            continue  # a member alone already reads it: the pair adds nothing
        # Among the judged sets: which one more principal turns this reader into a deny.
        denied = tuple(
            p for p in names if (w := verdict.get(s | {p})) is not None and not w.allowed
        )
        if denied:  # shown by every door, which render the explanation's reason
            why = replace(why, reason=f"{why.reason}; denied if also carrying {', '.join(denied)}")
        out.append(Reader(tuple(sorted(s)), why, denied))
    return out


@dataclass(frozen=True)
class AccessDiff:
    principals: tuple[str, ...]
    gained: tuple[str, ...]
    lost: tuple[str, ...]

    @property
    def principal(self) -> str:
        return _label(self.principals)


async def diff(
    store: PolicyStore,
    engine: PolicyEngine,
    proposed: PolicySet,
    callers: Iterable[CallerSet] | None = None,
) -> list[AccessDiff]:
    """Per caller set, the documents the proposed policy would add or remove."""
    current = engine.snapshot
    after = PolicyEngine(
        PolicySnapshot(-1, proposed, current.admin_principals, current.disabled_sources)
    )
    if callers is None:
        names = candidate_principals(current.policy, candidate_principals(proposed))
        names = candidate_principals(PolicySet(), [*names, *current.admin_principals])
        sets = caller_sets(names)
    else:
        sets = list(dict.fromkeys(callers))
    changes: dict[CallerSet, tuple[frozenset[str], frozenset[str]]] = {}
    for s in sets:
        caller = Caller.of(*s, transport="internal")
        before_ids = await store.readable_document_ids(engine.filter_for(caller))
        after_ids = await store.readable_document_ids(after.filter_for(caller))
        changes[s] = (frozenset(after_ids - before_ids), frozenset(before_ids - after_ids))
    out = []
    for s in sorted(sets, key=lambda s: (len(s), _label(s))):
        gained, lost = changes[s]
        if not gained and not lost:
            continue
        members = [frozenset([p]) for p in s] if len(s) > 1 else []
        if any(changes.get(m) == (gained, lost) for m in members):
            continue  # the pair changes exactly as one of its members alone
        out.append(AccessDiff(tuple(sorted(s)), tuple(sorted(gained)), tuple(sorted(lost))))
    return out


__all__ = [
    "MAX_CALLER_SETS",
    "AccessDiff",
    "CallerSet",
    "Explanation",
    "Reader",
    "RuleHit",
    "caller_sets",
    "candidate_principals",
    "diff",
    "explain",
    "rule_matches",
    "who_can",
]
