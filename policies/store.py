"""The policy repository: rules in ``policy_rules``, versions in ``policy_versions``.

Every change is ONE transaction that

1. takes a transaction-scoped advisory lock (writers queue; versions never collide),
2. applies the change and refuses it if the resulting policy does not lint clean,
3. writes ``policy_versions`` (version + 1, actor, summary); its ``audit_log`` row
   (method ``policy.add`` / ``policy.remove`` / ``policy.import`` / ``policy.replace``)
   joins the same transaction through the one audit mechanism: the use case's
   (``server.usecases.policy_admin``, passing its ``session``) or the recorder given to
   the store (``audit``), never written here by hand,
4. ``pg_notify('kb_policy', version)``, delivered to listeners when the commit lands.

Reads use REPEATABLE READ so a snapshot's rules, version and disabled sources always
belong together. Disabled sources are the configuration's ``enabled: false`` sources plus
stored sources (added through the API) whose ``enabled`` column is false; for a source
defined in the configuration file, the file's flag wins over its row.
Also here: the document lookups ``explain``/``who-can``/``diff`` need (SQL lives in
repositories).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidRequest, NotFound, PolicyError
from core.identity import Caller
from policies.access import AccessFilter, AuthzColumns, RowAttributes
from policies.lint import errors as lint_errors
from policies.rules import AccessRule, PolicyItem, PolicySet, Unreadable, item_from_row
from policies.snapshot import PolicySnapshot
from server.db.engine import Database
from server.db.models import Document, PolicyRule, PolicyVersion, Source

log = logging.getLogger(__name__)

CHANNEL = "kb_policy"
_LOCK_KEY = 0x6B62_706F_6C69  # "kbpoli": serialises policy writers across processes


@dataclass(frozen=True)
class StoredItem:
    id: int
    item: PolicyItem
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Change:
    version: int
    added: int = 0
    removed: int = 0


class _AlreadyBootstrapped(Exception):
    """Another process imported the bootstrap policy first."""


def _row_item(row: PolicyRule) -> PolicyItem | None:
    """A stored row as a typed item, or None if it is not one. See :func:`_read_row`."""
    return _read_row(row)[0]


def _read_row(row: PolicyRule) -> tuple[PolicyItem | None, str]:
    """A stored row as a typed item, and what was wrong with it ("" if nothing).

    Only rows written around the store can be unreadable (a non-integer ``max_level``, an
    unknown effect). Fail closed: a row whose effect is exactly ``allow`` is dropped (it
    grants nothing); any other unreadable ``p`` row becomes the widest deny it could be for
    its subject: its selector, with no conditions and no ``max_level`` (the snapshot widens
    an unreadable selector further, to ``*``). Each is logged here and counted as a
    problem of the snapshot.
    """
    values = (row.v0, row.v1, row.v2, row.v3, row.v4)
    try:
        return item_from_row(row.ptype, values, row.comment), ""
    except PolicyError as exc:
        problem = str(exc)
    if row.ptype != "p":
        log.warning("policy row %s ignored: %s", row.id, problem)
        return None, problem
    if row.v2 == "allow":
        log.warning("policy row %s (allow) dropped: %s", row.id, problem)
        return None, problem
    log.warning("policy row %s: %s; enforced as an unconditional deny", row.id, problem)
    return AccessRule(row.v0, row.v1, "deny", None, "", row.comment), problem


def _unreadable(row: PolicyRule, item: PolicyItem | None, problem: str) -> Unreadable:
    if isinstance(item, AccessRule):
        return Unreadable(item, problem, "widened")
    level = None
    with contextlib.suppress(ValueError):
        level = int(row.v3) if row.v3 else None
    return Unreadable(AccessRule(row.v0, row.v1, "allow", level, row.v4), problem, "dropped")


def _item_values(item: PolicyItem) -> dict[str, str]:
    key = item.key
    comment = getattr(item, "comment", "")
    return {"ptype": key[0], **{f"v{i}": key[i + 1] for i in range(5)}, "comment": comment}


class _Record(Protocol):
    policy_version: int | None
    result: dict[str, Any]


class _AuditedChange(Protocol):
    @property
    def session(self) -> AsyncSession: ...

    @property
    def record(self) -> _Record: ...


class ChangeRecorder(Protocol):
    """The audit recorder as the store uses it (``server.audit.recorder.AuditRecorder``):
    a transaction whose commit carries the change's audit row."""

    def change(
        self, caller: Caller | None, *, method: str, arguments: Mapping[str, Any] | None = None
    ) -> AbstractAsyncContextManager[_AuditedChange]: ...


class PolicyStore:
    def __init__(
        self,
        db: Database,
        configured_sources: Mapping[str, bool] | None = None,
        *,
        audit: ChangeRecorder | None = None,
    ) -> None:
        """``configured_sources``: name -> enabled, for the sources of the configuration file.
        ``audit``: the recorder that writes each change's row in the change's transaction
        (changes made through a use case's own session are audited by the use case)."""
        self.db = db
        self.configured_sources = dict(configured_sources or {})
        self.audit = audit

    # --- reads --------------------------------------------------------------------------

    async def version(self) -> int:
        async with self.db.sessions() as session:
            return await _version(session)

    async def state(self) -> tuple[int, frozenset[str]]:
        """The policy version and the disabled sources: what a poll compares (cheap)."""
        async with self.db.sessions() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            return await _version(session), await self._disabled(session)

    async def _disabled(self, session: AsyncSession) -> frozenset[str]:
        stored = (await session.execute(select(Source.name, Source.enabled))).all()
        enabled = {name: on for name, on in stored}
        enabled.update(self.configured_sources)  # the file's flag wins for its sources
        return frozenset(name for name, on in enabled.items() if not on)

    async def list_items(self) -> tuple[int, list[StoredItem]]:
        """The version and every stored row, in id order (ids are what ``remove`` takes)."""
        version, items, _, _ = await self._read()
        return version, items

    async def _read(self) -> tuple[int, list[StoredItem], list[Unreadable], frozenset[str]]:
        async with self.db.sessions() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            version = await _version(session)
            rows = (await session.execute(select(PolicyRule).order_by(PolicyRule.id))).scalars()
            items: list[StoredItem] = []
            unreadable: list[Unreadable] = []
            for r in rows:
                item, problem = _read_row(r)
                if problem:
                    unreadable.append(_unreadable(r, item, problem))
                if item is not None:
                    items.append(StoredItem(r.id, item, r.created_by, r.created_at))
            disabled = await self._disabled(session)
        return version, items, unreadable, disabled

    async def load(self) -> tuple[int, PolicySet]:
        version, items, unreadable, _ = await self._read()
        return version, PolicySet.of(s.item for s in items).with_unreadable(unreadable)

    async def load_snapshot(self, admin_principals: Iterable[str]) -> PolicySnapshot:
        version, items, unreadable, disabled = await self._read()
        policy = PolicySet.of(s.item for s in items).with_unreadable(unreadable)
        return PolicySnapshot(version, policy, frozenset(admin_principals), disabled)

    # --- writes -------------------------------------------------------------------------

    async def add(
        self, items: Sequence[PolicyItem], actor: Caller, session: AsyncSession | None = None
    ) -> Change:
        async def apply(session: AsyncSession, current: PolicySet) -> tuple[PolicySet, Change]:
            have = {i.key for i in current.items()}
            new = [i for i in PolicySet.of(items).items() if i.key not in have]
            if not new:
                raise InvalidRequest("every rule given is already in the policy")
            for item in new:
                session.add(PolicyRule(**_item_values(item), created_by=actor.subject))
            return PolicySet.of([*current.items(), *new]), Change(0, added=len(new))

        summary = {"add": [i.describe() for i in items]}
        return await self._change("policy.add", actor, summary, apply, session)

    async def remove(
        self, ids: Sequence[int], actor: Caller, session: AsyncSession | None = None
    ) -> Change:
        wanted = sorted(set(ids))
        if not wanted:
            raise InvalidRequest("give at least one rule id to remove")

        async def apply(session: AsyncSession, current: PolicySet) -> tuple[PolicySet, Change]:
            rows = (
                (await session.execute(select(PolicyRule).where(PolicyRule.id.in_(wanted))))
                .scalars()
                .all()
            )
            missing = sorted(set(wanted) - {r.id for r in rows})
            if missing:
                raise NotFound(f"no policy rule with id {', '.join(map(str, missing))}")
            gone = {item.key for r in rows if (item := _row_item(r)) is not None}
            await session.execute(delete(PolicyRule).where(PolicyRule.id.in_(wanted)))
            remaining = PolicySet.of(i for i in current.items() if i.key not in gone)
            return remaining, Change(0, removed=len(rows))

        return await self._change("policy.remove", actor, {"remove_ids": wanted}, apply, session)

    async def import_policy(
        self,
        policy: PolicySet,
        actor: Caller,
        *,
        replace: bool,
        session: AsyncSession | None = None,
    ) -> Change:
        """Merge ``policy`` into the stored one, or replace the stored one with it."""

        async def apply(session: AsyncSession, current: PolicySet) -> tuple[PolicySet, Change]:
            have = {i.key: i for i in current.items()}
            want = {i.key: i for i in policy.items()}
            removed = [k for k in have if k not in want] if replace else []
            added = [i for k, i in want.items() if k not in have]
            for key in removed:
                await session.execute(
                    delete(PolicyRule).where(
                        PolicyRule.ptype == key[0],
                        *(getattr(PolicyRule, f"v{i}") == key[i + 1] for i in range(5)),
                    )
                )
            for item in added:
                session.add(PolicyRule(**_item_values(item), created_by=actor.subject))
            result = policy if replace else PolicySet.of([*current.items(), *added])
            return result, Change(0, added=len(added), removed=len(removed))

        method = "policy.replace" if replace else "policy.import"
        return await self._change(method, actor, {"items": len(policy)}, apply, session)

    async def bootstrap(self, policy: PolicySet, actor: Caller) -> Change | None:
        """Import ``policy`` only if no policy version exists yet (first start)."""

        async def apply(session: AsyncSession, current: PolicySet) -> tuple[PolicySet, Change]:
            if await _version(session) != 0:
                raise _AlreadyBootstrapped
            for item in policy.items():
                session.add(PolicyRule(**_item_values(item), created_by=actor.subject))
            return policy, Change(0, added=len(policy))

        try:
            return await self._change("policy.import", actor, {"bootstrap": len(policy)}, apply)
        except _AlreadyBootstrapped:
            return None

    async def _apply(
        self, session: AsyncSession, actor: Caller, summary: dict[str, Any], apply: Any
    ) -> tuple[Change, dict[str, Any]]:
        """Lock, apply, lint, version and notify, inside ``session``'s transaction."""
        await session.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
        version = await _version(session)
        result, change = await apply(session, await _current(session))
        problems = lint_errors(result)
        if problems:
            raise PolicyError("policy refused: " + "; ".join(str(p) for p in problems[:10]))
        new_version = version + 1
        summary = {**summary, "added": change.added, "removed": change.removed}
        session.add(PolicyVersion(version=new_version, actor=actor.subject, summary=summary))
        await session.execute(select(func.pg_notify(CHANNEL, str(new_version))))
        return Change(new_version, change.added, change.removed), summary

    async def _change(
        self,
        method: str,
        actor: Caller,
        summary: dict[str, Any],
        apply: Any,
        session: AsyncSession | None = None,
    ) -> Change:
        if session is not None:
            # An audited use case's transaction: it writes the audit row and commits.
            done, _ = await self._apply(session, actor, summary, apply)
            return done
        if self.audit is None:
            # A store without a recorder (tools, tests): the change alone.
            async with self.db.sessions() as own, own.begin():
                done, _ = await self._apply(own, actor, summary, apply)
            return done
        # The one audit mechanism: the row joins this transaction; a failure gets its own.
        async with self.audit.change(actor, method=method, arguments=summary) as scope:
            done, _ = await self._apply(scope.session, actor, summary, apply)
            scope.record.policy_version = done.version
            scope.record.result.update({"added": done.added, "removed": done.removed})
        return done

    # --- documents, for explain / who-can / diff ----------------------------------------

    async def document(self, document_id: str) -> RowAttributes | None:
        try:
            doc_uuid = uuid.UUID(document_id)
        except ValueError:
            return None
        stmt = _ATTRIBUTES.where(Document.id == doc_uuid, Document.deleted_at.is_(None))
        async with self.db.sessions() as session:
            row = (await session.execute(stmt)).first()
        return None if row is None else RowAttributes.of_document(row)

    async def is_readable(self, access: AccessFilter, document_id: str) -> bool:
        """Whether the filter lets this one live document through (SQL, then re-check)."""
        try:
            doc_uuid = uuid.UUID(document_id)
        except ValueError:
            return False
        stmt = _ATTRIBUTES.where(
            Document.id == doc_uuid,
            Document.deleted_at.is_(None),
            access.where(AuthzColumns.of_documents(Document)),
        )
        async with self.db.sessions() as session:
            row = (await session.execute(stmt)).first()
        return row is not None and access.permits(RowAttributes.of_document(row))

    async def readable_document_ids(self, access: AccessFilter) -> set[str]:
        """Every live document the filter lets through (SQL predicate, then re-check)."""
        stmt = _ATTRIBUTES.where(
            Document.deleted_at.is_(None), access.where(AuthzColumns.of_documents(Document))
        )
        async with self.db.sessions() as session:
            rows = (await session.execute(stmt)).all()
        return {str(r.id) for r in rows if access.permits(RowAttributes.of_document(r))}


_ATTRIBUTES = select(
    Document.id,
    Document.source,
    Document.collection,
    Document.path,
    Document.level,
    Document.acl,
    Document.content_type,
    Document.metadata_,
)


async def _version(session: AsyncSession) -> int:
    value = (await session.execute(select(func.max(PolicyVersion.version)))).scalar()
    return int(value or 0)


async def _current(session: AsyncSession) -> PolicySet:
    rows = (await session.execute(select(PolicyRule).order_by(PolicyRule.id))).scalars().all()
    return PolicySet.of(item for r in rows if (item := _row_item(r)) is not None)


__all__ = ["CHANNEL", "Change", "PolicyStore", "StoredItem"]
