"""The authenticator: an ``Authorization`` header in, an :class:`Authenticated` caller out.

Routing: ``Bearer kb_...`` is an API key; any other bearer value is a JWT, verified by the
development issuer when its ``iss`` is ``kb-dev`` (dev mode only) and by the configured
issuer otherwise. Every failure is an :class:`AuthError`; nothing is forwarded anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from core.errors import AuthError, InsufficientScope
from core.identity import Caller, Transport
from server.auth.api_keys import ApiKeyService, looks_like_api_key
from server.auth.dev_issuer import DEV_ISSUER, DevIssuer
from server.auth.jwks import JwksSource
from server.auth.principals import caller_from_claims
from server.auth.token_cache import VerifiedTokenCache
from server.auth.verifier import JwtVerifier, unverified_issuer
from server.db.engine import Database
from server.settings import Settings

log = logging.getLogger(__name__)

Method = Literal["jwt", "dev", "api_key", "anonymous"]
ANONYMOUS = "svc:anonymous"
METADATA_PATH = "/.well-known/oauth-protected-resource"


def resource_uri(settings: Settings) -> str:
    """This server's MCP resource URI: the default audience of its tokens."""
    return f"{settings.http.base_url}/mcp"


def metadata_url(settings: Settings) -> str:
    """RFC 9728: the metadata of resource ``https://host/mcp`` lives at the root + path."""
    return f"{settings.http.base_url}{METADATA_PATH}/mcp"


def www_authenticate(
    metadata: str,
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> str:
    """An RFC 6750 / RFC 9728 challenge; quotes and backslashes are dropped from values."""

    def q(value: str) -> str:
        return '"' + value.replace("\\", "").replace('"', "'") + '"'

    parts = [f"resource_metadata={q(metadata)}"]
    if error:
        parts.append(f"error={q(error)}")
    if description:
        parts.append(f"error_description={q(description)}")
    if scope:
        parts.append(f"scope={q(scope)}")
    return "Bearer " + ", ".join(parts)


@dataclass(frozen=True)
class Authenticated:
    caller: Caller
    method: Method
    # When the credential stops being accepted: the token's exp plus the configured leeway.
    expires_at: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def _build_verifier(settings: Settings, audience: str) -> JwtVerifier | None:
    auth = settings.auth
    if not auth.issuer or not (auth.jwks_url or auth.jwks_file):
        if auth.issuer or auth.jwks_url or auth.jwks_file:
            log.error(
                "auth.issuer needs auth.jwks_url or auth.jwks_file (and vice versa); "
                "bearer JWTs will be refused"
            )
        elif auth.mode == "prod":
            # INFO, not WARNING: every CLI command builds a runtime too; each refusal warns.
            log.info(
                "no token issuer configured: bearer JWTs will be refused (API keys still work)"
            )
        return None
    keys = JwksSource(
        url=auth.jwks_url if not auth.jwks_file else None,
        file=settings.resolve(auth.jwks_file) if auth.jwks_file else None,
    )
    return JwtVerifier(
        issuer=auth.issuer,
        audience=audience,
        keys=keys,
        algorithms=auth.algorithms,
        leeway_s=auth.leeway_s,
    )


class Authenticator:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.mode = settings.auth.mode
        self.resource_uri = resource_uri(settings)
        self.metadata_url = metadata_url(settings)
        self.audience = settings.auth.audience or self.resource_uri
        self.verifier = _build_verifier(settings, self.audience)
        self.api_keys = ApiKeyService(db, default_scopes=settings.auth.required_scopes)
        self.verified = VerifiedTokenCache(settings.auth.verified_token_cache_s)
        # The dev key exists only in dev mode; `kb token mint` shares the same file.
        self.dev_issuer = (
            DevIssuer(
                settings.home_dir,
                audience=self.resource_uri,
                groups_claim=settings.auth.groups_claim,
            )
            if self.mode == "dev"
            else None
        )

    async def authenticate(
        self, authorization: str | None, *, transport: Transport
    ) -> Authenticated:
        if self.mode == "none":
            return Authenticated(Caller.of(ANONYMOUS, transport=transport), "anonymous")
        if not authorization:
            raise AuthError("authentication required: send an Authorization: Bearer header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("the Authorization header must read 'Bearer <token>'")
        return await self.authenticate_token(token, transport=transport)

    async def authenticate_token(self, token: str, *, transport: Transport) -> Authenticated:
        if looks_like_api_key(token):
            caller = await self.api_keys.authenticate(token, transport=transport)
            return Authenticated(caller, "api_key")
        known = self.verified.get(token)
        generation = await self._key_generation()
        if known is not None and known.key_generation != generation:
            # The issuer dropped a key since this token was verified: check it again.
            self.verified.forget(token)
            known = None
        if known is not None:
            # A copy: the claims of one request are never another request's object.
            claims, method = dict(known.claims), cast(Method, known.method)
        else:
            # The generation read before verifying: a reload during verification leaves the
            # entry older than the keys, so it is checked again next time (the safe side).
            claims, method = await self._verify(token)
        caller = caller_from_claims(claims, self.settings.auth, transport=transport)
        exp = claims.get("exp")
        # One leeway on every door: the verifier accepted the token up to exp + leeway, and
        # that is the expiry other layers (the MCP SDK's bearer check) compare with "now".
        # Reporting the bare exp made /mcp refuse what /admin accepted for leeway seconds.
        expires_at = exp + self.settings.auth.leeway_s if isinstance(exp, int) else None
        if known is None and expires_at is not None:
            self.verified.put(token, dict(claims), method, expires_at, generation)
        return Authenticated(caller, method, expires_at, claims)

    async def _key_generation(self) -> int:
        return await self.verifier.keys.current_generation() if self.verifier else 0

    async def _verify(self, token: str) -> tuple[dict[str, Any], Method]:
        """Signature and claims of a bearer JWT, by the dev issuer or the configured one."""
        if unverified_issuer(token) == DEV_ISSUER:
            if self.dev_issuer is None:
                log.warning("a development token was refused: auth.mode is %s, not dev", self.mode)
                raise AuthError("development tokens are not accepted by this server")
            claims = self.dev_issuer.verify(token, leeway_s=self.settings.auth.leeway_s)
            return claims, "dev"
        if self.verifier is None:
            log.warning("a bearer JWT was refused: no token issuer is configured")
            raise AuthError("this server accepts no bearer tokens from an issuer")
        return await self.verifier.verify(token), "jwt"

    def require_scopes(self, authenticated: Authenticated, scopes: Iterable[str]) -> None:
        """Raise InsufficientScope unless the caller holds every scope (anonymous: no check)."""
        if authenticated.method == "anonymous":
            return
        missing = sorted(set(scopes) - authenticated.caller.scopes)
        if missing:
            raise InsufficientScope(
                f"the token lacks the scope {' '.join(missing)}", required=missing
            )


__all__ = [
    "ANONYMOUS",
    "METADATA_PATH",
    "Authenticated",
    "Authenticator",
    "metadata_url",
    "resource_uri",
    "www_authenticate",
]
