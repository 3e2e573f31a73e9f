"""A caller's rules compiled into one SQL predicate over :class:`AuthzColumns`.

For the caller's principals P, with C the closure of P over role links (``g``)::

    predicate = OR(allow selector AND conditions AND level <= max_level)
                AND NOT OR(deny selector AND conditions)

over the normalised rules of subjects in C (see :mod:`policies.snapshot`). Every value is
a bound parameter; no SQL text is built from policy or user data. Each atom is non-NULL
(the authorization columns are NOT NULL and JSONB containment never yields NULL), so
``NOT`` cannot turn an unknown into a silent exclusion or inclusion.

Selectors:

* ``collection:X``  ``collection = d OR collection LIKE d || '/%'`` for X and every
  collection below X through ``g2`` (LIKE metacharacters in d escaped);
* ``path:P``        ``path LIKE P || '%'`` (escaped: a literal prefix);
* ``source:S``, ``doc:U``  equality; ``acl:source``  ``acl && ARRAY[C]``; ``*``  true.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import fields

from sqlalchemy import ColumnElement, Text, and_, false, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY

from policies.access import AuthzColumns
from policies.selectors import Condition, Selector
from policies.snapshot import EffectiveRule, PolicySnapshot

Predicate = Callable[[AuthzColumns], ColumnElement[bool]]


def _collection_sql(cols: AuthzColumns, names: Iterable[str]) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    for name in names:
        parts.append(cols.collection == name)
        parts.append(cols.collection.startswith(name + "/", autoescape=True))
    return or_(false(), *parts)


def selector_sql(
    selector: Selector, cols: AuthzColumns, snapshot: PolicySnapshot, closure: frozenset[str]
) -> ColumnElement[bool]:
    kind = selector.kind
    if kind == "all":
        return true()
    if kind == "collection":
        return _collection_sql(cols, snapshot.collection_scope(selector.value))
    if kind == "path":
        return cols.path.startswith(selector.value, autoescape=True)
    if kind == "source":
        return cols.source == selector.value
    if kind == "doc":
        return cols.document_id == uuid.UUID(selector.value)
    if kind == "acl":
        return cols.acl.overlap(literal(sorted(closure), ARRAY(Text)))  # type: ignore[no-any-return]
    raise AssertionError(f"unhandled selector kind {kind}")


def condition_sql(cond: Condition, cols: AuthzColumns) -> ColumnElement[bool]:
    if cond.attribute == "level":
        if cond.op == "<=":
            return cols.level <= cond.value
        if cond.op == ">=":
            return cols.level >= cond.value
        return cols.level == cond.value
    key = cond.metadata_key
    if key is None:
        if cond.op == "==":
            return cols.content_type == cond.value
        if cond.op == "!=":
            return cols.content_type != cond.value
        options = list(cond.value) if isinstance(cond.value, tuple) else [cond.value]
        return cols.content_type.in_(options) if options else false()

    # JSONB containment: true only when the key holds exactly this string (never NULL).
    def holds(value: str) -> ColumnElement[bool]:
        return cols.metadata.contains({key: value})

    if cond.op == "==":
        return holds(str(cond.value))
    if cond.op == "!=":
        return not_(holds(str(cond.value)))
    choices = cond.value if isinstance(cond.value, tuple) else (str(cond.value),)
    return or_(false(), *(holds(v) for v in choices))


def rule_sql(
    rule: EffectiveRule, cols: AuthzColumns, snapshot: PolicySnapshot, closure: frozenset[str]
) -> ColumnElement[bool]:
    parts = [selector_sql(rule.selector, cols, snapshot, closure)]
    parts.extend(condition_sql(c, cols) for c in rule.conditions)
    if rule.max_level is not None:
        parts.append(cols.level <= rule.max_level)
    return and_(*parts) if len(parts) > 1 else parts[0]


def compile_predicate(snapshot: PolicySnapshot, principals: Iterable[str]) -> Predicate:
    """The caller's predicate builder (called once per query with that query's columns)."""
    closure_map = snapshot.closure(principals)
    closure = frozenset(closure_map)
    rules = snapshot.rules_for(closure_map)
    allows = _unique(r for r in rules if r.effect == "allow")
    denies = _unique(r for r in rules if r.effect == "deny")

    def build(cols: AuthzColumns) -> ColumnElement[bool]:
        if not allows:
            return false()
        allowed = or_(*(rule_sql(r, cols, snapshot, closure) for r in allows))
        if not denies:
            return allowed
        denied = or_(*(rule_sql(r, cols, snapshot, closure) for r in denies))
        return and_(allowed, not_(denied))

    return once_per_columns(build)


def once_per_columns(build: Predicate) -> Predicate:
    """``build``, with each (immutable) expression built once per set of columns.

    A search puts the predicate into three or four statements over the same model columns,
    and the engine keeps the builder per snapshot and principals; the search also keys the
    statements it builds around the predicate on the expression's identity
    (server/search/statement_memo.py). Keyed by the columns' identities; each entry holds
    its columns, so no key is reused by other objects.
    """
    built: dict[tuple[int, ...], tuple[AuthzColumns, ColumnElement[bool]]] = {}

    def where(cols: AuthzColumns) -> ColumnElement[bool]:
        key = tuple(id(c) for c in _columns_of(cols))
        found = built.get(key)
        if found is not None:
            return found[1]
        expression = build(cols)
        if len(built) >= 32:  # aliased columns (rare) are new objects each time
            built.clear()
        built[key] = (cols, expression)
        return expression

    return where


def _columns_of(cols: AuthzColumns) -> tuple[object, ...]:
    """The column objects of ``cols``, not copied (``dataclasses.astuple`` deep-copies)."""
    return tuple(getattr(cols, f.name) for f in fields(cols))


def _unique(rules: Iterable[EffectiveRule]) -> list[EffectiveRule]:
    """Rules of different subjects often share selector and conditions: compile each once."""
    seen: dict[tuple[object, ...], EffectiveRule] = {}
    for r in rules:
        seen.setdefault((r.selector, r.conditions, r.max_level), r)
    return list(seen.values())


__all__ = [
    "Predicate",
    "compile_predicate",
    "condition_sql",
    "once_per_columns",
    "rule_sql",
    "selector_sql",
]
