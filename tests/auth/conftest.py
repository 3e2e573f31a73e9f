"""Keys, JWKS files and token builders for the authentication tests."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test/oauth2/default"


@dataclass(frozen=True)
class KeyPair:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algo = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        data: dict[str, Any] = json.loads(algo.to_jwk(public))
        data.update(kid=self.kid, use="sig", alg=self.alg)
        return data

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **headers}
        )


def new_rsa(kid: str) -> KeyPair:
    return KeyPair(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def new_ec(kid: str) -> KeyPair:
    return KeyPair(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    return new_rsa("rsa-1")


@pytest.fixture(scope="session")
def ec_key() -> KeyPair:
    return new_ec("ec-1")


def write_jwks(path: Path, *keys: KeyPair) -> Path:
    path.write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
    return path


def claims_for(
    audience: str, *, sub: str = "alice", scope: str | None = "kb.read", **extra: Any
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": sub,
        "iat": now,
        "exp": now + 600,
        "scope": scope,
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any]) -> str:
    """An ``alg: none`` token, built by hand (PyJWT refuses to help)."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: KeyPair) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's public key."""
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64(json.dumps(claims).encode())
    mac = hmac.new(key.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


TokenFactory = Callable[..., str]
