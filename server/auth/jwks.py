"""Signing keys of the token issuer: a JWKS fetched from a URL or read from a file.

Keys are looked up by ``kid``. An unknown ``kid`` triggers one refresh (the issuer may
have rotated its keys), at most once per ``refresh_interval_s`` so a flood of forged kids
cannot hammer the issuer. A file is re-read when its modification time changes.

``generation`` counts the reloads that dropped a key. A verified-token cache records it
with each token and trusts an entry only while it is unchanged, so a token signed by a key
the issuer withdrew is refused as soon as the withdrawal is seen, not a cache time later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

log = logging.getLogger(__name__)

# Which key type each accepted algorithm needs; HMAC and "none" are never accepted.
KEY_TYPE_FOR_ALG = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "ES256": "EC",
    "ES384": "EC",
}


@dataclass(frozen=True)
class SigningKey:
    kid: str | None
    kty: str
    alg: str | None
    key: Any  # a cryptography public key


def _identity(key: SigningKey) -> tuple[str | None, str, bytes]:
    """What makes two keys the same key: kid, type and the public key itself."""
    der: bytes = key.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return key.kid, key.kty, der


class KeyNotFound(Exception):
    """No usable key for the token's kid (after a refresh, if one was allowed)."""


def parse_jwks(document: Any) -> list[SigningKey]:
    """The usable public signing keys of a JWKS document; others are skipped with a log line."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS document is an object with a 'keys' list")
    keys: list[SigningKey] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kty, use, kid = entry.get("kty"), entry.get("use"), entry.get("kid")
        if use not in (None, "sig") or kty not in ("RSA", "EC"):
            continue
        if "d" in entry:
            log.warning("JWKS key %s holds private material; ignored", kid)
            continue
        try:
            data = json.dumps(entry)
            key = RSAAlgorithm.from_jwk(data) if kty == "RSA" else ECAlgorithm.from_jwk(data)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("JWKS key %s is unusable: %s", kid, exc)
            continue
        keys.append(
            SigningKey(
                kid=kid if isinstance(kid, str) else None,
                kty=kty,
                alg=entry.get("alg") if isinstance(entry.get("alg"), str) else None,
                key=key,
            )
        )
    return keys


class JwksSource:
    """Keys from ``url`` (cached ``ttl_s``) or ``file`` (re-read when it changes)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        file: Path | None = None,
        ttl_s: float = 3600.0,
        refresh_interval_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        if (url is None) == (file is None):
            raise ValueError("give exactly one of a JWKS url or file")
        self.url = url
        self.file = file
        self.ttl_s = ttl_s
        self.refresh_interval_s = refresh_interval_s
        self.timeout_s = timeout_s
        self._keys: list[SigningKey] = []
        self._loaded_at = 0.0
        self._last_attempt = float("-inf")
        self._file_mtime: float | None = None
        self._lock = asyncio.Lock()
        self.generation = 0

    @property
    def description(self) -> str:
        return self.url or str(self.file)

    async def _fetch(self) -> list[SigningKey]:
        if self.file is not None:
            text = await asyncio.to_thread(self.file.read_text, encoding="utf-8")
            return parse_jwks(json.loads(text))
        assert self.url is not None
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return parse_jwks(response.json())

    def _file_changed(self) -> bool:
        if self.file is None:
            return False
        try:
            mtime = self.file.stat().st_mtime
        except OSError:
            return False
        return mtime != self._file_mtime

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload the keys unless the last attempt was too recent. True if reloaded."""
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._last_attempt < self.refresh_interval_s:
                return False
            self._last_attempt = now
            try:
                mtime = self.file.stat().st_mtime if self.file is not None else None
                keys = await self._fetch()
            except (OSError, ValueError, httpx.HTTPError) as exc:
                # Keep the old keys: a flaky issuer must not lock everyone out.
                log.error("cannot load JWKS from %s: %s", self.description, exc)
                return False
            if {_identity(k) for k in self._keys} - {_identity(k) for k in keys}:
                self.generation += 1
                log.warning("the JWKS at %s dropped a signing key", self.description)
            self._keys, self._loaded_at, self._file_mtime = keys, now, mtime
            log.info("loaded %d signing keys from %s", len(keys), self.description)
            return True

    async def current_generation(self) -> int:
        """The generation after picking up a changed file or an expired key set."""
        stale = bool(self._keys) and time.monotonic() - self._loaded_at > self.ttl_s
        changed = self._file_changed()
        if stale or changed:
            await self.refresh(force=changed)
        return self.generation

    def _match(self, kid: str | None, alg: str) -> SigningKey | None:
        kty = KEY_TYPE_FOR_ALG.get(alg)
        candidates = [k for k in self._keys if k.kty == kty and (k.alg is None or k.alg == alg)]
        if kid is None:
            # Without a kid only an unambiguous key set is safe to use.
            return candidates[0] if len(candidates) == 1 else None
        return next((k for k in candidates if k.kid == kid), None)

    async def key_for(self, kid: str | None, alg: str) -> SigningKey:
        stale = time.monotonic() - self._loaded_at > self.ttl_s
        changed = self._file_changed()
        if not self._keys or stale or changed:
            # Rate-limited even with no keys yet, so an unreachable issuer is not hammered;
            # a changed file is cheap to read and always reloaded.
            await self.refresh(force=changed)
        key = self._match(kid, alg)
        if key is None and await self.refresh():
            key = self._match(kid, alg)
        if key is None:
            raise KeyNotFound(f"no {alg} signing key with kid {kid!r}")
        return key


__all__ = ["KEY_TYPE_FOR_ALG", "JwksSource", "KeyNotFound", "SigningKey", "parse_jwks"]
