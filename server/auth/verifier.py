"""Verify bearer JWTs from the configured issuer: signature, alg, iss, aud, exp/nbf.

Only the asymmetric algorithms listed in ``settings.auth.algorithms`` are accepted, each
checked against the key type it needs, so ``alg=none`` and HMAC tokens (including the
classic "HS256 keyed with the public key" confusion) fail before any signature check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import jwt

from core.errors import AuthError
from server.auth.jwks import KEY_TYPE_FOR_ALG, JwksSource, KeyNotFound

log = logging.getLogger(__name__)


def unverified_header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("the bearer token is not a well-formed JWT") from None
    return dict(header)


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` claim before verification: only to route the token to its verifier."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("the bearer token is not a well-formed JWT") from None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


def checked_algorithm(header: dict[str, Any], allowed: Sequence[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed or alg not in KEY_TYPE_FOR_ALG:
        raise AuthError(f"tokens signed with {alg!r} are not accepted")
    return alg


def decode_verified(
    token: str,
    key: Any,
    *,
    alg: str,
    issuer: str,
    audience: str,
    leeway_s: int,
) -> dict[str, Any]:
    """Check signature and registered claims; every failure is one AuthError."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the bearer token has expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("the bearer token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise AuthError("the bearer token was issued for another audience") from None
    except jwt.InvalidIssuerError:
        raise AuthError("the bearer token comes from an unexpected issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"the bearer token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise AuthError("the bearer token signature is invalid") from None
    except jwt.PyJWTError as exc:
        log.info("bearer token refused: %s", exc)
        raise AuthError("the bearer token is invalid") from None
    return dict(claims)


class JwtVerifier:
    """Tokens from one issuer, with keys from its JWKS."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: JwksSource,
        algorithms: Sequence[str],
        leeway_s: int,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.algorithms = tuple(algorithms)
        self.leeway_s = leeway_s

    async def verify(self, token: str) -> dict[str, Any]:
        header = unverified_header(token)
        alg = checked_algorithm(header, self.algorithms)
        kid = header.get("kid")
        try:
            signing_key = await self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        except KeyNotFound as exc:
            log.info("bearer token refused: %s", exc)
            raise AuthError("the bearer token was signed by an unknown key") from None
        return decode_verified(
            token,
            signing_key.key,
            alg=alg,
            issuer=self.issuer,
            audience=self.audience,
            leeway_s=self.leeway_s,
        )


__all__ = [
    "JwtVerifier",
    "checked_algorithm",
    "decode_verified",
    "unverified_header",
    "unverified_issuer",
]
