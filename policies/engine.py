"""The policy engine: the current immutable snapshot and the access filters made from it.

``filter_for(caller)`` is what every query path calls. Its compiled parts (the SQL
predicate builder and the per-caller Casbin checker) are cached per principal set inside
the snapshot, so swapping in a new snapshot (one attribute assignment, atomic) also drops
every cached filter of the old version. Nothing here does I/O: loading and watching are in
:mod:`policies.store` and :mod:`policies.listener`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, true

from core.identity import Caller
from policies.access import AccessFilter, AuthzColumns, RowAttributes, make_access_filter
from policies.compiler import compile_predicate
from policies.enforcer import RowChecker, build_enforcer
from policies.rules import PolicySet
from policies.selectors import collection_prefixes
from policies.snapshot import PolicySnapshot

log = logging.getLogger(__name__)

#: Distinct principal sets whose compiled filters one snapshot keeps.
CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Compiled:
    is_admin: bool
    where: Callable[[AuthzColumns], ColumnElement[bool]]
    permits: Callable[[RowAttributes], bool]


def _allow_all(_: AuthzColumns) -> ColumnElement[bool]:
    return true()


def _permit_all(_: RowAttributes) -> bool:
    return True


class PolicyEngine:
    """Holds the snapshot; makes access filters. Thread-safe; cheap to call per request."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()  # guards cache fills, not reads of the snapshot
        self.uncompilable_rules = len(snapshot.problems)  # counter metric, per load
        self.reloads = 0

    @classmethod
    def empty(cls, admin_principals: Iterable[str] = ()) -> PolicyEngine:
        """No rules: nobody but admins reads anything (the fail-closed default)."""
        return cls(PolicySnapshot(0, PolicySet(), frozenset(admin_principals)))

    @classmethod
    def of(
        cls, policy: PolicySet, *, version: int = 0, admin_principals: Iterable[str] = ()
    ) -> PolicyEngine:
        return cls(PolicySnapshot(version, policy, frozenset(admin_principals)))

    @property
    def snapshot(self) -> PolicySnapshot:
        return self._snapshot

    @property
    def version(self) -> int:
        return self._snapshot.version

    @property
    def admin_principals(self) -> frozenset[str]:
        return self._snapshot.admin_principals

    def swap(self, snapshot: PolicySnapshot) -> None:
        """Install a new snapshot; in-flight filters keep the version they were made at."""
        self._snapshot = snapshot
        self.uncompilable_rules += len(snapshot.problems)
        self.reloads += 1
        log.info("policy version %s active (%d rules)", snapshot.version, len(snapshot.policy))

    def replace_policy(self, policy: PolicySet, version: int) -> None:
        self.swap(PolicySnapshot(version, policy, self._snapshot.admin_principals))

    def is_admin(self, caller: Caller) -> bool:
        return self._snapshot.is_admin(caller.principals)

    def filter_for(self, caller: Caller) -> AccessFilter:
        snapshot = self._snapshot  # one read: the filter is consistent with one version
        compiled = self._compiled(snapshot, caller.principals)
        where, permits = compiled.where, compiled.permits
        if caller.restrict_sources is not None or caller.restrict_collections is not None:
            where, permits = _restricted(snapshot, caller, where, permits)
        return make_access_filter(
            caller=caller,
            policy_version=snapshot.version,
            where=where,
            permits=permits,
            is_admin=compiled.is_admin,
        )

    def _compiled(self, snapshot: PolicySnapshot, principals: frozenset[str]) -> _Compiled:
        cached: _Compiled | None = snapshot.cache.get(principals)
        if cached is not None:
            return cached
        compiled = self._compile(snapshot, principals)
        with self._lock:
            if len(snapshot.cache) >= CACHE_SIZE:
                snapshot.cache.clear()
            snapshot.cache[principals] = compiled
        return compiled

    @staticmethod
    def _compile(snapshot: PolicySnapshot, principals: frozenset[str]) -> _Compiled:
        closure = snapshot.closure(principals)
        if snapshot.is_admin(principals):
            return _Compiled(True, _allow_all, _permit_all)
        rules = snapshot.rules_for(closure)
        # The re-check enforcer holds only what this caller can reach: their rules, the
        # role links along their closure, and the collection hierarchy.
        role_links = [
            (m, r) for m, roles in snapshot.role_edges.items() if m in closure for r in roles
        ]
        enforcer = build_enforcer(
            (r.casbin_row() for r in rules),
            roles=role_links,
            collections=[(c.child, c.parent) for c in snapshot.policy.collections],
        )
        return _Compiled(
            False, compile_predicate(snapshot, principals), RowChecker(enforcer, principals)
        )


def _restricted(
    snapshot: PolicySnapshot,
    caller: Caller,
    where: Callable[[AuthzColumns], ColumnElement[bool]],
    permits: Callable[[RowAttributes], bool],
) -> tuple[Callable[[AuthzColumns], ColumnElement[bool]], Callable[[RowAttributes], bool]]:
    """An API key narrowed to some sources and/or collections: AND that into both paths."""
    sources = caller.restrict_sources
    scopes: set[str] | None = None
    if caller.restrict_collections is not None:
        scopes = set()
        for name in caller.restrict_collections:
            scopes.update(snapshot.collection_scope(name))

    def narrowed_where(cols: AuthzColumns) -> ColumnElement[bool]:
        parts = [where(cols)]
        if sources is not None:
            parts.append(cols.source.in_(sorted(sources)) if sources else false())
        if scopes is not None:
            ors = [cols.collection == n for n in sorted(scopes)]
            ors += [cols.collection.startswith(n + "/", autoescape=True) for n in sorted(scopes)]
            parts.append(or_(false(), *ors))
        return and_(*parts)

    def narrowed_permits(row: RowAttributes) -> bool:
        if sources is not None and row.source not in sources:
            return False
        if scopes is not None and not any(p in scopes for p in collection_prefixes(row.collection)):
            return False
        return permits(row)

    return narrowed_where, narrowed_permits


__all__ = ["CACHE_SIZE", "PolicyEngine"]
