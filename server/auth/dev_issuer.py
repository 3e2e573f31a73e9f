"""The development issuer: real ES256 JWTs signed by a local key, for dev mode only.

The key pair is generated once into ``KB_HOME/dev-signing-key.pem`` (mode 0600). Its
tokens carry ``iss = "kb-dev"`` and the MCP resource URI as audience. The server accepts
them only while ``auth.mode`` is ``dev``; in ``prod`` they are refused with a log line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.errors import AuthError, ConfigError
from server.auth.verifier import checked_algorithm, decode_verified, unverified_header

log = logging.getLogger(__name__)

DEV_ISSUER = "kb-dev"
KEY_FILE = "dev-signing-key.pem"
ALG = "ES256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: two processes starting at once must not overwrite each other's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pem = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            log.info("generated the development signing key in %s", path)
            return key
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; it should be mode 0600", path)
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ConfigError("the development signing key is not an EC key; delete it to regenerate")
    return loaded


def _set_path(claims: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = claims
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class DevIssuer:
    """Mints and verifies development tokens."""

    def __init__(self, home: Path, *, audience: str, groups_claim: str = "groups") -> None:
        self.key_path = home / KEY_FILE
        self.audience = audience
        self.groups_claim = groups_claim
        self._key = _load_or_create_key(self.key_path)
        public = self._key.public_key().public_numbers()
        self.public_jwk: dict[str, str] = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(public.x.to_bytes(32, "big")),
            "y": _b64(public.y.to_bytes(32, "big")),
        }
        # RFC 7638 thumbprint: a stable kid derived from the public key.
        canonical = json.dumps(self.public_jwk, sort_keys=True, separators=(",", ":"))
        self.kid = _b64(hashlib.sha256(canonical.encode()).digest())

    def mint(
        self,
        sub: str,
        *,
        groups: Sequence[str] = (),
        email: str | None = None,
        scopes: Sequence[str] = (),
        ttl_s: int = 3600,
        client_id: str = "kb-cli",
    ) -> str:
        if not sub:
            raise ValueError("a development token needs a subject")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "client_id": client_id,
            "scope": " ".join(scopes),
        }
        if groups:
            _set_path(claims, self.groups_claim, list(groups))
        if email:
            claims["email"] = email
            claims["email_verified"] = True
        return jwt.encode(claims, self._key, algorithm=ALG, headers={"kid": self.kid})

    def verify(self, token: str, *, leeway_s: int) -> dict[str, Any]:
        header = unverified_header(token)
        checked_algorithm(header, [ALG])
        if header.get("kid") not in (None, self.kid):
            raise AuthError("the development token was signed by another key")
        return decode_verified(
            token,
            self._key.public_key(),
            alg=ALG,
            issuer=DEV_ISSUER,
            audience=self.audience,
            leeway_s=leeway_s,
        )


__all__ = ["DEV_ISSUER", "DevIssuer"]
