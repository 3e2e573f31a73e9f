"""FastAPI dependencies that identify the caller of an HTTP request.

``current_caller`` authenticates the ``Authorization`` header (a bearer JWT or an API key)
and maps failures to RFC 6750 answers whose ``WWW-Authenticate`` points at the RFC 9728
protected-resource metadata. ``admin_caller`` turns the caller into the admin capability
(:class:`~policies.capability.AdminCaller`, minted by ``policies/`` only); it is the one
router-level dependency of every ``/admin`` route, and records every refusal.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from core.errors import AccessDenied, AuthError, InsufficientScope
from core.identity import Caller
from policies.capability import AdminCaller
from server.auth.service import Authenticated, Authenticator, www_authenticate
from server.usecases.admin import admin_of

if TYPE_CHECKING:
    from server.runtime import Runtime
    from server.settings import Settings

log = logging.getLogger(__name__)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _unauthorized(auth: Authenticator, exc: AuthError, *, token_given: bool) -> HTTPException:
    # RFC 6750 3.1: no error code when the request carried no credentials at all.
    error = "invalid_token" if token_given else None
    return HTTPException(
        status_code=401,
        detail=exc.message,
        headers={
            "WWW-Authenticate": www_authenticate(
                auth.metadata_url, error=error, description=exc.message
            )
        },
    )


def _forbidden_scope(auth: Authenticator, exc: InsufficientScope) -> HTTPException:
    return HTTPException(
        status_code=403,
        detail={"error": "insufficient_scope", "required": exc.required, "message": exc.message},
        headers={
            "WWW-Authenticate": www_authenticate(
                auth.metadata_url,
                error="insufficient_scope",
                description=exc.message,
                scope=" ".join(exc.required),
            )
        },
    )


async def authenticate_request(
    request: Request, required_scopes: list[str] | None = None
) -> Authenticated:
    """Authenticate once per request; later calls reuse the stored result."""
    cached: Authenticated | None = getattr(request.state, "authenticated", None)
    auth = _runtime(request).auth
    if cached is None:
        header = request.headers.get("authorization")
        try:
            cached = await auth.authenticate(header, transport="rest")
        except AuthError as exc:
            raise _unauthorized(auth, exc, token_given=bool(header)) from None
        request.state.authenticated = cached
        request.state.caller = cached.caller
    scopes = _settings(request).auth.required_scopes if required_scopes is None else required_scopes
    try:
        auth.require_scopes(cached, scopes)
    except InsufficientScope as exc:
        raise _forbidden_scope(auth, exc) from None
    return cached


async def current_caller(request: Request) -> Caller:
    """The authenticated caller, holding the scopes every call needs (401/403 otherwise)."""
    return (await authenticate_request(request)).caller


async def _refused(request: Request, caller: Caller | None, reason: str) -> None:
    """A refused /admin call leaves its audit row too (no use case ran, so it is written here)."""
    runtime = _runtime(request)
    await runtime.audit.record(
        principals=caller.principals if caller else (),
        client_id=caller.client_id if caller else None,
        transport="rest",
        method="admin.authorize",
        target=_action(request),
        outcome="denied",
        error=reason,
    )


def _action(request: Request) -> str:
    return f"{request.method} {request.url.path}"


async def admin_caller(request: Request) -> AdminCaller:
    """The admin capability for this request: role:admin, not a narrowed API key, and (for
    OAuth tokens) the admin scope. The one dependency of every ``/admin`` route."""
    cached: AdminCaller | None = getattr(request.state, "admin", None)
    if cached is not None:
        return cached
    try:
        # The admin scope stands on its own: an admin token need not also carry kb.read.
        authenticated = await authenticate_request(request, required_scopes=[])
    except HTTPException as exc:
        await _refused(request, None, str(exc.detail))
        raise
    caller = authenticated.caller
    runtime = _runtime(request)
    if authenticated.method in ("jwt", "dev"):
        try:
            runtime.auth.require_scopes(authenticated, [_settings(request).auth.admin_scope])
        except InsufficientScope as exc:
            await _refused(request, caller, exc.message)
            raise _forbidden_scope(runtime.auth, exc) from None
    try:
        admin = await admin_of(runtime, caller, action=_action(request))
    except AccessDenied as exc:
        raise HTTPException(status_code=403, detail=exc.message) from None
    request.state.admin = admin
    return admin


__all__ = ["admin_caller", "authenticate_request", "current_caller"]
