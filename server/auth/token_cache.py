"""Bearer JWTs already verified, remembered for a short while.

Verifying a token (two JWT decodes and an ES256/RS256 signature check) cost about 0.8 ms
of Python per request on these machines (`python -m bench search_profile`: 8 % of the
server's samples), and an assistant sends the same token on every call. A verified token's
claims are a pure function of the token, the issuer's keys and the clock, so they can be
reused until the earlier of

* the moment verification itself would start refusing it (``exp`` plus the leeway), and
* ``auth.verified_token_cache_s`` after it was verified.

Each entry also carries the JWKS ``generation`` it was verified under; the authenticator
drops an entry once the issuer's key set has lost a key since (a JWKS file is checked on
every request, a JWKS URL when its own TTL runs out), so a rotation away from a key takes
effect at once for cached tokens too.

Only successes are kept (a refused token is verified again each time, and says why).
Entries are keyed by a SHA-256 of the token, so the cache holds no bearer secrets.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    method: str
    until: float  # time.time() after which the token must be verified again
    key_generation: int = 0  # the issuer's JWKS generation when it was verified


class VerifiedTokenCache:
    """A bounded LRU of verified tokens; ``ttl_s`` 0 keeps nothing."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> VerifiedToken | None:
        if self.ttl_s <= 0:
            return None
        key = self._key(token)
        found = self._items.get(key)
        if found is None:
            return None
        if time.time() >= found.until:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return found

    def put(
        self,
        token: str,
        claims: dict[str, Any],
        method: str,
        expires_at: float,
        key_generation: int = 0,
    ) -> None:
        """Remember a token verified just now; ``expires_at`` is exp + leeway."""
        if self.ttl_s <= 0:
            return
        until = min(time.time() + self.ttl_s, expires_at)
        self._items[self._key(token)] = VerifiedToken(claims, method, until, key_generation)
        self._items.move_to_end(self._key(token))
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def forget(self, token: str) -> None:
        self._items.pop(self._key(token), None)

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["VerifiedToken", "VerifiedTokenCache"]
