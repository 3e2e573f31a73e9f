"""``/admin/keys``: API keys for service accounts (admin role required).

The routes parse and render; :mod:`server.usecases.keys` does the rest."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from policies.capability import AdminCaller
from server.auth.api_keys import KeyInfo, NewKey
from server.http.deps import admin_caller
from server.http.params import StorableText
from server.usecases import keys as usecases
from server.usecases.keys import KeyRequest

if TYPE_CHECKING:
    from server.runtime import Runtime

# One dependency for the whole router: no route here runs without the admin capability.
router = APIRouter(prefix="/admin/keys", tags=["admin"], dependencies=[Depends(admin_caller)])

Admin = Annotated[AdminCaller, Depends(admin_caller)]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StorableText = Field(description="Service account name; the key acts as svc:<name>.")
    expires_at: datetime | None = Field(
        default=None, description="When the key stops working (with zone)."
    )
    scopes: list[StorableText] | None = Field(
        default=None, description="Scopes (default: auth.required_scopes)."
    )
    sources: list[StorableText] | None = Field(
        default=None, description="Restrict to these sources."
    )
    collections: list[StorableText] | None = Field(
        default=None, description="Restrict to these collections."
    )


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(
        default=0, ge=0, le=30 * 86400, description="Seconds the old key keeps working."
    )


class KeyOut(BaseModel):
    id: uuid.UUID
    name: str
    principal: str
    prefix: str
    status: str
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
    def of(cls, info: KeyInfo) -> KeyOut:
        # Same field names as KeyInfo (status is its property): read them, never the secret.
        return cls.model_validate(info, from_attributes=True)


class NewKeyOut(BaseModel):
    key: KeyOut
    secret: str = Field(description="The API key itself. Shown only once: store it now.")

    @classmethod
    def of(cls, new: NewKey) -> NewKeyOut:
        return cls(key=KeyOut.of(new.info), secret=new.secret)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("", summary="List API keys (never their secrets)")
async def list_keys(request: Request, admin: Admin, include_revoked: bool = False) -> list[KeyOut]:
    keys = await usecases.list_keys(_runtime(request), admin, include_revoked=include_revoked)
    return [KeyOut.of(k) for k in keys]


@router.post("", status_code=201, summary="Create an API key; the secret is returned once")
async def create_key(request: Request, admin: Admin, body: KeyCreate) -> NewKeyOut:
    wanted = KeyRequest(
        name=body.name,
        expires_at=body.expires_at,
        scopes=body.scopes,
        sources=body.sources,
        collections=body.collections,
    )
    return NewKeyOut.of(await usecases.create_key(_runtime(request), admin, wanted))


@router.delete("/{ref}", summary="Revoke an API key (by id or prefix)")
async def revoke_key(request: Request, admin: Admin, ref: str) -> KeyOut:
    return KeyOut.of(await usecases.revoke_key(_runtime(request), admin, ref))


@router.post("/{ref}/rotate", status_code=201, summary="Replace an API key with a new secret")
async def rotate_key(
    request: Request, admin: Admin, ref: str, body: KeyRotate | None = None
) -> NewKeyOut:
    grace_s = body.grace_s if body else 0
    return NewKeyOut.of(await usecases.rotate_key(_runtime(request), admin, ref, grace_s=grace_s))
