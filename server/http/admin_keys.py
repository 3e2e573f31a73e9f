"""``/admin/keys``: API keys for service accounts (admin role required)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequest, NotFound
from core.identity import Caller
from server.auth.api_keys import ApiKeyService, KeyInfo, NewKey
from server.http.deps import require_admin
from server.http.params import StorableText
from server.runtime import Runtime

router = APIRouter(prefix="/admin/keys", tags=["admin"])

Admin = Annotated[Caller, Depends(require_admin)]


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


def _service(request: Request) -> ApiKeyService:
    runtime: Runtime = request.app.state.runtime
    return runtime.auth.api_keys


def _http_error(exc: InvalidRequest | NotFound) -> HTTPException:
    return HTTPException(status_code=404 if isinstance(exc, NotFound) else 400, detail=exc.message)


@router.get("", summary="List API keys (never their secrets)")
async def list_keys(request: Request, admin: Admin, include_revoked: bool = False) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await _service(request).list(include_revoked=include_revoked)]


@router.post("", status_code=201, summary="Create an API key; the secret is returned once")
async def create_key(request: Request, admin: Admin, body: KeyCreate) -> NewKeyOut:
    try:
        new = await _service(request).create(
            body.name,
            created_by=admin.subject,
            expires_at=body.expires_at,
            scopes=body.scopes,
            sources=body.sources,
            collections=body.collections,
        )
    except InvalidRequest as exc:
        raise _http_error(exc) from None
    return NewKeyOut.of(new)


@router.delete("/{ref}", summary="Revoke an API key (by id or prefix)")
async def revoke_key(request: Request, admin: Admin, ref: str) -> KeyOut:
    try:
        return KeyOut.of(await _service(request).revoke(ref, by=admin.subject))
    except (InvalidRequest, NotFound) as exc:
        raise _http_error(exc) from None


@router.post("/{ref}/rotate", status_code=201, summary="Replace an API key with a new secret")
async def rotate_key(
    request: Request, admin: Admin, ref: str, body: KeyRotate | None = None
) -> NewKeyOut:
    grace = timedelta(seconds=body.grace_s if body else 0)
    try:
        return NewKeyOut.of(await _service(request).rotate(ref, by=admin.subject, grace=grace))
    except (InvalidRequest, NotFound) as exc:
        raise _http_error(exc) from None
