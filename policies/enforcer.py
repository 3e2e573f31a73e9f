"""Casbin enforcers over ``model.conf``, with the custom matcher functions for our selectors.

:func:`build_enforcer` loads a pycasbin enforcer with whatever rules it is given: the
policy engine gives it one caller's closure rules (the per-row re-check), tests give it
every rule (the leak oracle). The request is ``(Subject, document)``:

* ``sub_match(sub, p.sub)``: a principal of the caller is ``p.sub`` or holds it via ``g``;
* ``obj_match(sub, obj, p.obj)``: the typed selector matches (collections through "/"
  nesting and ``g2``; ``acl:source`` through the caller's principals and roles);
* ``level_ok(obj, p.lvl)``, ``cond_match(obj, p.cond)``: clearance and conditions;
* ``is_admin(sub)``: the caller holds ``role:admin`` (admins are not stopped by denies).

A selector or condition these functions cannot parse matches nothing: that is raw Casbin
behaviour, used by the oracle. The engine never loads such a rule (snapshot normalisation
drops or widens it first), so the re-check and the SQL see the same rules.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import casbin
from casbin.util.expression import SimpleEval

from core.errors import PolicyError
from policies.access import RowAttributes
from policies.selectors import (
    collection_prefixes,
    conditions_hold,
    parse_conditions,
    parse_selector,
)
from policies.snapshot import ADMIN_ROLE, MAX_HIERARCHY_DEPTH

_MODEL_TEXT = resources.files("policies").joinpath("model.conf").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Subject:
    """The request subject: every principal the caller acts as."""

    principals: frozenset[str]

    def __str__(self) -> str:
        return ",".join(sorted(self.principals))


# Rules are few and fixed per enforcer, rows many: parse each selector and condition text
# once. Both return immutable values; a text that does not parse raises every time.
_selector = functools.lru_cache(maxsize=4096)(parse_selector)
_conditions = functools.lru_cache(maxsize=4096)(parse_conditions)


class _ParsedOnceEnforcer(casbin.Enforcer):  # type: ignore[misc]
    """A pycasbin enforcer that parses its matcher once, not on every ``enforce()``.

    pycasbin builds a new evaluator for the matcher text on each call (``ast.parse`` and
    the evaluator's setup): measured as half of a per-row re-check. The matcher text
    is fixed by ``model.conf``, so the evaluator is kept per text and handed each call's
    function map (pycasbin regenerates the ``g`` functions per call; same role managers).
    Callers serialise ``enforce()`` per enforcer (``RowChecker`` holds a lock), as they must
    anyway: pycasbin mutates shared state during a call.
    """

    def _get_expression(
        self, expr: str, functions: dict[str, Callable[..., Any]] | None = None
    ) -> SimpleEval:
        cache: dict[str, SimpleEval] = self.__dict__.setdefault("_parsed_matchers", {})
        evaluator = cache.get(expr)
        if evaluator is None:
            evaluator = casbin.Enforcer._get_expression(expr, functions)
            cache[expr] = evaluator
        else:
            # What the evaluator's constructor adds to the map (compound-type builtins).
            evaluator.functions = {
                **(functions or {}),
                "list": list,
                "tuple": tuple,
                "dict": dict,
                "set": set,
            }
        return evaluator


def _functions(enforcer: casbin.Enforcer) -> dict[str, Callable[..., bool]]:
    roles = enforcer.get_role_manager()
    collections = enforcer.get_named_role_manager("g2")

    def holds(sub: Subject, name: str) -> bool:
        return any(roles.has_link(p, name) for p in sub.principals)

    def sub_match(sub: Subject, p_sub: str) -> bool:
        return holds(sub, p_sub)

    def is_admin(sub: Subject) -> bool:
        return holds(sub, ADMIN_ROLE)

    def obj_match(sub: Subject, obj: RowAttributes, p_obj: str) -> bool:
        try:
            sel = _selector(p_obj)
        except PolicyError:
            return False
        if sel.kind == "all":
            return True
        if sel.kind == "collection":
            return any(
                collections.has_link(c, sel.value) for c in collection_prefixes(obj.collection)
            )
        if sel.kind == "path":
            return obj.path.startswith(sel.value)
        if sel.kind == "source":
            return obj.source == sel.value
        if sel.kind == "doc":
            return obj.document_id.lower() == sel.value
        return any(holds(sub, principal) for principal in obj.acl)  # acl:source

    def level_ok(obj: RowAttributes, p_lvl: str) -> bool:
        if p_lvl == "":
            return True
        try:
            return obj.level <= int(p_lvl)
        except ValueError:
            return False

    def cond_match(obj: RowAttributes, p_cond: str) -> bool:
        try:
            return conditions_hold(_conditions(p_cond), obj)
        except PolicyError:
            return False

    return {
        "sub_match": sub_match,
        "is_admin": is_admin,
        "obj_match": obj_match,
        "level_ok": level_ok,
        "cond_match": cond_match,
    }


def build_enforcer(
    rules: Iterable[Sequence[str]],
    roles: Iterable[tuple[str, str]] = (),
    collections: Iterable[tuple[str, str]] = (),
    admin_principals: Iterable[str] = (),
) -> casbin.Enforcer:
    """An enforcer over ``model.conf`` holding exactly these ``p``, ``g`` and ``g2`` rows.

    ``rules`` are ``[sub, obj, eft, lvl, cond]``; ``admin_principals`` hold role:admin,
    and ``p, role:admin, *, allow`` is always present.
    """
    enforcer = _ParsedOnceEnforcer(casbin.Enforcer.new_model(text=_MODEL_TEXT))
    # Same bound as the compiler's closure; Casbin counts the start node as a level.
    for ptype in ("g", "g2"):
        enforcer.get_named_role_manager(ptype).max_hierarchy_level = MAX_HIERARCHY_DEPTH + 1
    for name, fn in _functions(enforcer).items():
        enforcer.add_function(name, fn)
    p_rows = _unique([list(r) for r in rules] + [[ADMIN_ROLE, "*", "allow", "", ""]])
    g_rows = _unique([[m, r] for m, r in roles] + [[p, ADMIN_ROLE] for p in admin_principals])
    g2_rows = _unique([[c, p] for c, p in collections])
    enforcer.add_policies(p_rows)
    if g_rows:
        enforcer.add_grouping_policies(g_rows)
    if g2_rows:
        enforcer.add_named_grouping_policies("g2", g2_rows)
    return enforcer


def _unique(rows: list[list[str]]) -> list[list[str]]:
    # add_policies refuses the whole batch if any row is already present.
    seen: dict[tuple[str, ...], list[str]] = {}
    for row in rows:
        seen.setdefault(tuple(row), row)
    return list(seen.values())


def _decision_key(row: RowAttributes) -> Hashable:
    # Everything the matcher can read of a row (metadata by value: conditions test it).
    metadata = json.dumps(row.metadata, sort_keys=True, default=str)
    return (
        row.document_id,
        row.source,
        row.collection,
        row.path,
        row.level,
        row.acl,
        row.content_type,
        metadata,
    )


class RowChecker:
    """``permits(row)`` for one caller: an enforcer holding only that caller's rules.

    Decisions are remembered per row attributes (LRU): one checker belongs to one policy
    snapshot and one set of principals (the engine caches it per both; its enforcer is
    never changed after it is built: a new policy is a new snapshot with new checkers),
    and a decision depends on nothing else, so the documents a caller's searches keep
    returning cost one Casbin evaluation each (about 0.2 ms) instead of one per hit. A row
    whose ACL, collection, path or metadata changed is a new key.
    """

    MEMO_SIZE = 4096

    def __init__(self, enforcer: casbin.Enforcer, principals: frozenset[str]) -> None:
        self._enforcer = enforcer
        self._subject = Subject(principals)
        # pycasbin mutates its function map and role caches during enforce().
        self._lock = threading.Lock()
        self._memo: OrderedDict[Hashable, bool] = OrderedDict()

    def __call__(self, row: RowAttributes) -> bool:
        key = _decision_key(row)
        with self._lock:
            known = self._memo.get(key)
            if known is not None:
                self._memo.move_to_end(key)
                return known
            # An exception propagates (AccessFilter.permits denies) and is never remembered.
            decision = bool(self._enforcer.enforce(self._subject, row))
            self._memo[key] = decision
            if len(self._memo) > self.MEMO_SIZE:
                self._memo.popitem(last=False)
            return decision


def enforce(enforcer: casbin.Enforcer, principals: Iterable[str], row: Any) -> bool:
    """One plain Casbin decision (the oracle in tests, ``kb policy test`` for documents)."""
    return bool(enforcer.enforce(Subject(frozenset(principals)), row))


__all__ = ["RowChecker", "Subject", "build_enforcer", "enforce"]
