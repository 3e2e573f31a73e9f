"""FastAPI dependencies that identify the caller of an HTTP request.

``current_caller`` authenticates the ``Authorization`` header (a bearer JWT or an API key)
and maps failures to RFC 6750 answers whose ``WWW-Authenticate`` points at the RFC 9728
protected-resource metadata. ``require_admin`` adds the admin role and, for OAuth tokens,
the admin scope. Both stash the result on ``request.state`` so handlers and the audit
recorder see the same identity.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from core.errors import AuthError, InsufficientScope
from core.identity import Caller
from server.auth.service import Authenticated, Authenticator, www_authenticate

if TYPE_CHECKING:
    from server.runtime import Runtime
    from server.settings import Settings

log = logging.getLogger(__name__)

ADMIN_ROLE = "role:admin"


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


async def is_admin(request: Request, caller: Caller) -> bool:
    """Bootstrap admins from settings, or role:admin granted by the policy engine."""
    if ADMIN_ROLE in caller.principals:
        return True
    if set(_settings(request).auth.admin_principals) & caller.principals:
        return True
    # role:admin granted through the policies (role hierarchy included).
    return _runtime(request).policies.is_admin(caller)


async def require_admin(request: Request) -> Caller:
    """The caller, who must hold role:admin and (for OAuth tokens) the admin scope."""
    # The admin scope stands on its own: an admin token need not also carry kb.read.
    authenticated = await authenticate_request(request, required_scopes=[])
    caller = authenticated.caller
    if authenticated.method in ("jwt", "dev"):
        try:
            _runtime(request).auth.require_scopes(
                authenticated, [_settings(request).auth.admin_scope]
            )
        except InsufficientScope as exc:
            raise _forbidden_scope(_runtime(request).auth, exc) from None
    if not await is_admin(request, caller):
        log.info("admin access refused for %s", caller.subject)
        raise HTTPException(status_code=403, detail="the admin role is required")
    return caller


__all__ = ["ADMIN_ROLE", "authenticate_request", "current_caller", "is_admin", "require_admin"]
