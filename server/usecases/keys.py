"""API keys for service accounts: create, list, revoke, rotate (admin only).

Each change writes its audit row in the key's own transaction: if the row cannot be
written, the key does not exist. Rows record what was asked (name, scopes, expiry,
narrowing) and what came out (prefix, principal), never the secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from policies.capability import AdminCaller
from server.auth.api_keys import KeyInfo, NewKey

if TYPE_CHECKING:
    from server.runtime import Runtime


@dataclass(frozen=True)
class KeyRequest:
    name: str
    expires_at: datetime | None = None
    scopes: list[str] | None = None
    sources: list[str] | None = None
    collections: list[str] | None = None

    def audited(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "scopes": self.scopes,
            "sources": self.sources,
            "collections": self.collections,
        }


def _made(new: NewKey) -> dict[str, Any]:
    info = new.info
    return {
        "id": str(info.id),
        "prefix": info.prefix,
        "principal": info.principal,
        "scopes": info.scopes,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
    }


async def create_key(rt: Runtime, admin: AdminCaller, request: KeyRequest) -> NewKey:
    async with rt.audit.change(
        admin.caller, method="keys.create", target=request.name, arguments=request.audited()
    ) as scope:
        new = await rt.auth.api_keys.create(
            request.name,
            created_by=admin.subject,
            expires_at=request.expires_at,
            scopes=request.scopes,
            sources=request.sources,
            collections=request.collections,
            session=scope.session,
        )
        scope.record.result.update(_made(new))
    return new


async def list_keys(rt: Runtime, admin: AdminCaller, *, include_revoked: bool) -> list[KeyInfo]:
    async with rt.audit.call(
        admin.caller, method="keys.list", arguments={"include_revoked": include_revoked}
    ):
        return await rt.auth.api_keys.list(include_revoked=include_revoked)


async def revoke_key(rt: Runtime, admin: AdminCaller, ref: str) -> KeyInfo:
    async with rt.audit.change(
        admin.caller, method="keys.revoke", target=ref, arguments={"key": ref}
    ) as scope:
        info = await rt.auth.api_keys.revoke(ref, by=admin.subject, session=scope.session)
        scope.record.result.update({"prefix": info.prefix, "principal": info.principal})
    return info


async def rotate_key(rt: Runtime, admin: AdminCaller, ref: str, *, grace_s: int) -> NewKey:
    async with rt.audit.change(
        admin.caller, method="keys.rotate", target=ref, arguments={"key": ref, "grace_s": grace_s}
    ) as scope:
        new = await rt.auth.api_keys.rotate(
            ref, by=admin.subject, grace=timedelta(seconds=grace_s), session=scope.session
        )
        scope.record.result.update(_made(new))
    return new


__all__ = ["KeyRequest", "create_key", "list_keys", "revoke_key", "rotate_key"]
