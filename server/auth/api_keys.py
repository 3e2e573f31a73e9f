"""API keys for service accounts: create, list, revoke, rotate, authenticate.

A key reads ``kb_<prefix>_<secret>``. The prefix finds the row; only the SHA-256 of the
whole key is stored and compared in constant time. The secret is shown once, at creation.
A key acts as ``svc:<name>`` and may be narrowed to some sources or collections.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import AuthError, InvalidRequest, NotFound
from core.identity import Caller, Transport
from server.auth import key_store
from server.db.engine import Database
from server.db.models import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "kb_"
_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LEN = 12
_SECRET_LEN = 40
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_KEY = re.compile(rf"^kb_([a-z0-9]{{{_PREFIX_LEN}}})_([A-Za-z0-9]{{{_SECRET_LEN}}})$")
# Names that would collide with principals the server hands out itself.
RESERVED_NAMES = frozenset({"anonymous", "kb", "kb-cli"})
LAST_USED_RESOLUTION = timedelta(seconds=60)
INVALID = "the API key is invalid, revoked or expired"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# A fixed digest to compare against when the prefix is unknown, so both paths do the same work.
_DUMMY_HASH = _hash("kb_unknown")


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret or hash."""

    id: uuid.UUID
    name: str
    principal: str
    prefix: str
    scopes: list[str]
    sources: list[str] | None
    collections: list[str] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: uuid.UUID | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            principal=row.principal,
            prefix=row.key_prefix,
            scopes=list(row.scopes),
            sources=list(row.sources) if row.sources is not None else None,
            collections=list(row.collections) if row.collections is not None else None,
            created_by=row.created_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            rotated_from=row.rotated_from,
        )

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: ``secret`` is the only copy and is shown once."""

    info: KeyInfo
    secret: str


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX) and token.count(".") != 2


def _clean_list(values: Sequence[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    cleaned = sorted({v.strip() for v in values if v.strip()})
    if not cleaned:
        raise InvalidRequest(f"an empty {what} restriction would allow nothing; omit it instead")
    return cleaned


class ApiKeyService:
    def __init__(self, db: Database, *, default_scopes: Sequence[str]) -> None:
        self.db = db
        self.default_scopes = list(default_scopes)

    async def create(
        self,
        name: str,
        *,
        created_by: str,
        expires_at: datetime | None = None,
        scopes: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        collections: Sequence[str] | None = None,
        rotated_from: uuid.UUID | None = None,
        session: AsyncSession | None = None,
    ) -> NewKey:
        """``session``: write in the caller's transaction (the audited use case commits)."""
        if not _NAME.match(name) or name in RESERVED_NAMES:
            raise InvalidRequest(
                f"invalid key name {name!r}: use 1-63 lowercase letters, digits, '.', '_' or '-'"
            )
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidRequest("the expiry needs a time zone (e.g. 2030-01-01T00:00:00Z)")
            if expires_at <= datetime.now(UTC):
                raise InvalidRequest("the expiry is in the past")
        prefix = "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(_PREFIX_LEN)
        )
        secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LEN))
        full = f"{KEY_PREFIX}{prefix}_{secret}"
        row = ApiKey(
            name=name,
            principal=f"svc:{name}",
            key_prefix=prefix,
            key_hash=_hash(full),
            scopes=sorted(set(self.default_scopes if scopes is None else scopes)),
            sources=_clean_list(sources, "sources"),
            collections=_clean_list(collections, "collections"),
            created_by=created_by,
            expires_at=expires_at,
            rotated_from=rotated_from,
        )
        async with self._transaction(session) as tx:
            row = await key_store.insert(tx, row)
            info = KeyInfo.of(row)
        log.info("API key %s (%s) created by %s", info.prefix, info.principal, created_by)
        return NewKey(info=info, secret=full)

    async def list(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        async with self.db.sessions() as session:
            return [
                KeyInfo.of(r)
                for r in await key_store.list_keys(session, include_revoked=include_revoked)
            ]

    async def _find(self, session: AsyncSession, ref: str) -> ApiKey:
        """A key by id or by prefix (as shown by ``list``)."""
        row: ApiKey | None
        try:
            row = await key_store.by_id(session, uuid.UUID(ref))
        except ValueError:
            row = await key_store.by_prefix(session, ref.removeprefix(KEY_PREFIX).split("_")[0])
        if row is None:
            raise NotFound(f"no API key {ref!r}")
        return row

    async def revoke(self, ref: str, *, by: str, session: AsyncSession | None = None) -> KeyInfo:
        async with self._transaction(session) as tx:
            row = await self._find(tx, ref)
            await key_store.revoke(tx, row.id)
            await tx.refresh(row)
            info = KeyInfo.of(row)
        log.info("API key %s revoked by %s", info.prefix, by)
        return info

    async def rotate(
        self,
        ref: str,
        *,
        by: str,
        grace: timedelta = timedelta(0),
        session: AsyncSession | None = None,
    ) -> NewKey:
        """A new key with the same name and limits; the old one ends now or after ``grace``.

        With ``session``, the new key and the old key's end are one transaction."""
        async with self._transaction(session) as tx:
            old = KeyInfo.of(await self._find(tx, ref))
        if old.status != "active":
            raise InvalidRequest(f"API key {old.prefix} is {old.status} and cannot be rotated")
        new = await self.create(
            old.name,
            created_by=by,
            expires_at=old.expires_at,
            scopes=old.scopes,
            sources=old.sources,
            collections=old.collections,
            rotated_from=old.id,
            session=session,
        )
        async with self._transaction(session) as tx:
            if grace <= timedelta(0):
                await key_store.revoke(tx, old.id)
            else:
                until = datetime.now(UTC) + grace
                if old.expires_at is None or until < old.expires_at:
                    await key_store.expire_at(tx, old.id, until)
        return new

    @asynccontextmanager
    async def _transaction(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """The caller's session (it commits), or a transaction of our own."""
        if session is not None:
            yield session
            return
        async with self.db.sessions.begin() as own:
            yield own

    async def authenticate(self, key: str, *, transport: Transport) -> Caller:
        match = _KEY.match(key)
        if match is None:
            raise AuthError(INVALID)
        async with self.db.sessions.begin() as session:
            row = await key_store.by_prefix(session, match.group(1))
            ok = hmac.compare_digest(row.key_hash if row else _DUMMY_HASH, _hash(key))
            if row is None or not ok:
                raise AuthError(INVALID)
            info = KeyInfo.of(row)
            if info.status != "active":
                log.info("API key %s refused: %s", info.prefix, info.status)
                raise AuthError(INVALID)
            await key_store.mark_used(
                session, row.id, older_than=datetime.now(UTC) - LAST_USED_RESOLUTION
            )
        return Caller(
            subject=info.principal,
            principals=frozenset({info.principal}),
            transport=transport,
            client_id=f"{KEY_PREFIX}{info.prefix}",
            scopes=frozenset(info.scopes),
            restrict_sources=frozenset(info.sources) if info.sources is not None else None,
            restrict_collections=frozenset(info.collections)
            if info.collections is not None
            else None,
        )


__all__ = ["INVALID", "KEY_PREFIX", "ApiKeyService", "KeyInfo", "NewKey", "looks_like_api_key"]
