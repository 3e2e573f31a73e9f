"""The policy engine: the current immutable snapshot and the access filters made from it.

``filter_for(caller)`` is what every query path calls. Its compiled parts (the SQL
predicate builder and the per-caller Casbin checker) are cached per principal set inside
the snapshot, so swapping in a new snapshot (one attribute assignment, atomic) also drops
every cached filter of the old version. Nothing here does I/O: loading and watching are in
:mod:`policies.store` and :mod:`policies.listener`.

Staleness: a watched engine (``max_age`` set) records when its snapshot was last
*confirmed* current (a successful reload or poll). Past ``max_age`` seconds without a
confirmation it refuses to make filters (:class:`PolicyError`), so a replica cut off from
the database stops serving an old policy instead of enforcing it silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true

from core.errors import PolicyError
from core.identity import Caller
from policies.access import AccessFilter, AuthzColumns, RowAttributes, make_access_filter
from policies.compiler import compile_predicate, once_per_columns
from policies.enforcer import RowChecker, build_enforcer
from policies.rules import PolicySet
from policies.selectors import collection_prefixes
from policies.snapshot import PolicySnapshot

log = logging.getLogger(__name__)

#: Distinct principal sets whose compiled filters one snapshot keeps.
CACHE_SIZE = 4096

#: What a caller reads when the policy cannot be evaluated (no detail: it is in the log).
STALE_POLICY = "your access rules could not be evaluated"


@dataclass(frozen=True)
class _Compiled:
    is_admin: bool
    where: Callable[[AuthzColumns], ColumnElement[bool]]
    permits: Callable[[RowAttributes], bool]
    exact: bool


def _allow_all(_: AuthzColumns) -> ColumnElement[bool]:
    return true()


def _permit_all(_: RowAttributes) -> bool:
    return True


class PolicyEngine:
    """Holds the snapshot; makes access filters. Thread-safe; cheap to call per request."""

    def __init__(self, snapshot: PolicySnapshot, *, max_age: float | None = None) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()  # guards cache fills, not reads of the snapshot
        self.uncompilable_rules = len(snapshot.problems)  # counter metric, per load
        self.reloads = 0
        #: Seconds a snapshot may go unconfirmed before filters are refused (None: never,
        #: for one-shot processes that load once and exit).
        self.max_age = max_age
        self._confirmed_at = time.monotonic()
        self._stale_logged = False

    @classmethod
    def empty(cls, admin_principals: Iterable[str] = ()) -> PolicyEngine:
        """No rules: nobody but admins reads anything (the fail-closed default)."""
        return cls(PolicySnapshot(0, PolicySet(), frozenset(admin_principals)))

    @classmethod
    def of(
        cls,
        policy: PolicySet,
        *,
        version: int = 0,
        admin_principals: Iterable[str] = (),
        disabled_sources: Iterable[str] = (),
    ) -> PolicyEngine:
        return cls(
            PolicySnapshot(
                version, policy, frozenset(admin_principals), frozenset(disabled_sources)
            )
        )

    @property
    def snapshot(self) -> PolicySnapshot:
        return self._snapshot

    @property
    def version(self) -> int:
        return self._snapshot.version

    @property
    def admin_principals(self) -> frozenset[str]:
        return self._snapshot.admin_principals

    @property
    def disabled_sources(self) -> frozenset[str]:
        return self._snapshot.disabled_sources

    def swap(self, snapshot: PolicySnapshot) -> None:
        """Install a new snapshot; in-flight filters keep the version they were made at."""
        self._snapshot = snapshot
        self.uncompilable_rules += len(snapshot.problems)
        self.reloads += 1
        self.confirm()
        log.info(
            "policy version %s active (%d rules, %d disabled sources)",
            snapshot.version,
            len(snapshot.policy),
            len(snapshot.disabled_sources),
        )

    def replace_policy(self, policy: PolicySet, version: int) -> None:
        s = self._snapshot
        self.swap(PolicySnapshot(version, policy, s.admin_principals, s.disabled_sources))

    def confirm(self) -> None:
        """The active snapshot was just checked against the database and is current."""
        self._confirmed_at = time.monotonic()
        if self._stale_logged:
            log.warning("policy snapshot confirmed current again; serving resumes")
            self._stale_logged = False

    @property
    def age(self) -> float:
        """Seconds since the snapshot was last confirmed current."""
        return time.monotonic() - self._confirmed_at

    @property
    def is_stale(self) -> bool:
        return self.stale_at(self.age)

    def stale_at(self, age: float) -> bool:
        """Whether a snapshot unconfirmed for ``age`` seconds is past the bound (so a
        report can decide and show one reading of the clock)."""
        return self.max_age is not None and age > self.max_age

    def _refuse_if_stale(self) -> None:
        if not self.is_stale:
            return
        if not self._stale_logged:  # once per outage, not once per request
            self._stale_logged = True
            log.error(
                "policy snapshot v%s unconfirmed for %.1fs (bound %.1fs): LISTEN and poll are "
                "failing; refusing every access filter until the database answers again",
                self._snapshot.version,
                self.age,
                self.max_age,
            )
        raise PolicyError(STALE_POLICY)

    def is_admin(self, caller: Caller) -> bool:
        return self._snapshot.is_admin(caller.principals)

    def filter_for(self, caller: Caller) -> AccessFilter:
        """The caller's filter; raises :class:`PolicyError` if the snapshot went stale."""
        self._refuse_if_stale()
        snapshot = self._snapshot  # one read: the filter is consistent with one version
        compiled = self._compiled(snapshot, caller.principals)
        where, permits = compiled.where, compiled.permits
        if caller.restrict_sources is not None or caller.restrict_collections is not None:
            where, permits = self._narrowed(snapshot, caller, compiled)
        return make_access_filter(
            caller=caller,
            policy_version=snapshot.version,
            where=where,
            permits=permits,
            is_admin=compiled.is_admin,
            exact=compiled.exact,
            disabled_sources=snapshot.disabled_sources,
        )

    def _narrowed(
        self, snapshot: PolicySnapshot, caller: Caller, compiled: _Compiled
    ) -> tuple[Callable[[AuthzColumns], ColumnElement[bool]], Callable[[RowAttributes], bool]]:
        """An API key's narrowing, kept per snapshot like the rules it narrows (so its
        predicate, too, is one object per columns and the search's statements are reused)."""
        key = ("narrowed", caller.principals, caller.restrict_sources, caller.restrict_collections)
        narrowed: tuple[
            Callable[[AuthzColumns], ColumnElement[bool]], Callable[[RowAttributes], bool]
        ] = self._cached(
            snapshot, key, lambda: _restricted(snapshot, caller, compiled.where, compiled.permits)
        )
        return narrowed

    def _compiled(self, snapshot: PolicySnapshot, principals: frozenset[str]) -> _Compiled:
        compiled: _Compiled = self._cached(
            snapshot, principals, lambda: self._compile(snapshot, principals)
        )
        return compiled

    def _cached(self, snapshot: PolicySnapshot, key: Any, make: Callable[[], Any]) -> Any:
        """What ``make`` builds for ``key``, kept in the snapshot (bounded)."""
        found = snapshot.cache.get(key)
        if found is not None:
            return found
        made = make()
        with self._lock:
            if len(snapshot.cache) >= CACHE_SIZE:
                snapshot.cache.clear()
            snapshot.cache[key] = made
        return made

    @staticmethod
    def _compile(snapshot: PolicySnapshot, principals: frozenset[str]) -> _Compiled:
        where, permits, is_admin, exact = PolicyEngine._compile_rules(snapshot, principals)
        where, permits = _online(snapshot.disabled_sources, where, permits)
        return _Compiled(is_admin, where, permits, exact)

    @staticmethod
    def _compile_rules(
        snapshot: PolicySnapshot, principals: frozenset[str]
    ) -> tuple[
        Callable[[AuthzColumns], ColumnElement[bool]], Callable[[RowAttributes], bool], bool, bool
    ]:
        closure = snapshot.closure(principals)
        if snapshot.is_admin(principals):
            return _allow_all, _permit_all, True, True
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
        # Exact when none of the caller's rules was narrowed or widened by normalisation:
        # then the predicate and the re-check evaluate the very same rules as written.
        exact = not any(r.problem for r in rules) and not any(
            p.rule.subject in closure for p in snapshot.problems
        )
        return (
            compile_predicate(snapshot, principals),
            RowChecker(enforcer, principals),
            False,
            exact,
        )


def _online(
    disabled: frozenset[str],
    where: Callable[[AuthzColumns], ColumnElement[bool]],
    permits: Callable[[RowAttributes], bool],
) -> tuple[Callable[[AuthzColumns], ColumnElement[bool]], Callable[[RowAttributes], bool]]:
    """Take disabled sources offline in both paths, for every caller (admins included)."""
    if not disabled:
        return where, permits
    names = sorted(disabled)

    # Built once per columns, like the predicate it wraps (the engine caches this wrapper
    # per snapshot and principals).
    @once_per_columns
    def online_where(cols: AuthzColumns) -> ColumnElement[bool]:
        return and_(cols.source.not_in(names), where(cols))

    def online_permits(row: RowAttributes) -> bool:
        return row.source not in disabled and permits(row)

    return online_where, online_permits


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

    @once_per_columns
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


__all__ = ["CACHE_SIZE", "STALE_POLICY", "PolicyEngine"]
