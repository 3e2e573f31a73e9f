"""Verified bearer tokens are remembered briefly, never past what verification allows.

The attacks: a token that expires while cached, a forged token (never cached, always
refused), a token signed by a key the issuer then drops (refused as soon as the drop is
seen, cached or not), and two callers' tokens never answering for each other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import anyio
import pytest

from core.errors import AuthError
from server.auth.service import Authenticator, resource_uri
from server.auth.token_cache import VerifiedTokenCache
from server.db.engine import Database, DatabaseTarget
from server.settings import Settings
from tests.auth.conftest import ISSUER, KeyPair, claims_for, new_ec, write_jwks


def _rotate(jwks: Path) -> None:
    """The issuer replaces its key; the file's mtime moves even on a coarse clock."""
    write_jwks(jwks, new_ec("rotated"))
    later = time.time() + 5
    os.utime(jwks, (later, later))


def _authenticator(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    jwks: Path,
    cache_s: float = 30.0,
    leeway_s: int = 0,
) -> tuple[Authenticator, str]:
    settings = make_settings(
        auth={
            "mode": "prod",
            "issuer": ISSUER,
            "jwks_file": str(jwks),
            "verified_token_cache_s": cache_s,
            "leeway_s": leeway_s,
        }
    )
    return Authenticator(settings, Database.open(db_target, settings)), resource_uri(settings)


@pytest.mark.anyio
async def test_a_cached_token_skips_the_signature_check_and_keeps_its_caller(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    rsa_key: KeyPair,
    tmp_path: Path,
) -> None:
    auth, aud = _authenticator(make_settings, db_target, write_jwks(tmp_path / "k.json", rsa_key))
    alice = rsa_key.sign(claims_for(aud, sub="alice", groups=["eng"]))
    bob = rsa_key.sign(claims_for(aud, sub="bob", groups=["hr"]))
    with mock.patch(
        "server.auth.verifier.decode_verified",
        wraps=__import__("server.auth.verifier", fromlist=["decode_verified"]).decode_verified,
    ) as checked:
        first = await auth.authenticate_token(alice, transport="http")
        again = await auth.authenticate_token(alice, transport="http")
        other = await auth.authenticate_token(bob, transport="http")
    assert checked.call_count == 2  # alice once, bob once
    assert first.caller.principals == again.caller.principals
    assert "user:alice" in again.caller.principals and "group:eng" in again.caller.principals
    assert "user:bob" in other.caller.principals and "user:alice" not in other.caller.principals
    # Each request gets its own claims object, none shared with the cache.
    assert again.claims is not first.claims and again.claims == first.claims


@pytest.mark.anyio
async def test_a_forged_token_is_refused_every_time(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    rsa_key: KeyPair,
    tmp_path: Path,
) -> None:
    auth, aud = _authenticator(make_settings, db_target, write_jwks(tmp_path / "k.json", rsa_key))
    forged = new_ec("intruder").sign(claims_for(aud))
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.authenticate_token(forged, transport="http")
    assert len(auth.verified) == 0


@pytest.mark.anyio
async def test_a_cached_token_still_expires_on_time(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    rsa_key: KeyPair,
    tmp_path: Path,
) -> None:
    auth, aud = _authenticator(make_settings, db_target, write_jwks(tmp_path / "k.json", rsa_key))
    claims = claims_for(aud)
    claims["exp"] = int(time.time()) + 2
    token = rsa_key.sign(claims)
    await auth.authenticate_token(token, transport="http")
    await auth.authenticate_token(token, transport="http")  # from the cache
    await anyio.sleep(max(0.0, claims["exp"] - time.time()) + 0.2)
    with pytest.raises(AuthError, match="expired"):
        await auth.authenticate_token(token, transport="http")


@pytest.mark.anyio
@pytest.mark.parametrize("cache_s", [30.0, 0.0], ids=["cached", "cache-off"])
async def test_a_dropped_key_refuses_its_cached_tokens_at_once(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    rsa_key: KeyPair,
    tmp_path: Path,
    cache_s: float,
) -> None:
    jwks = write_jwks(tmp_path / "k.json", rsa_key)
    auth, aud = _authenticator(make_settings, db_target, jwks, cache_s=cache_s)
    token = rsa_key.sign(claims_for(aud))
    await auth.authenticate_token(token, transport="http")
    assert len(auth.verified) == (1 if cache_s else 0)
    _rotate(jwks)  # the issuer drops the key, well within the cache time
    with pytest.raises(AuthError, match="unknown key"):
        await auth.authenticate_token(token, transport="http")
    assert len(auth.verified) == 0


@pytest.mark.anyio
async def test_adding_a_key_keeps_cached_tokens(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    rsa_key: KeyPair,
    tmp_path: Path,
) -> None:
    """Only a withdrawn key invalidates: publishing the next key ahead of a rotation does not
    send every cached caller back through the signature check."""
    jwks = write_jwks(tmp_path / "k.json", rsa_key)
    auth, aud = _authenticator(make_settings, db_target, jwks)
    token = rsa_key.sign(claims_for(aud))
    await auth.authenticate_token(token, transport="http")
    write_jwks(jwks, rsa_key, new_ec("next"))
    later = time.time() + 5
    os.utime(jwks, (later, later))
    with mock.patch("server.auth.verifier.decode_verified") as checked:
        again = await auth.authenticate_token(token, transport="http")
    assert checked.call_count == 0
    assert "user:alice" in again.caller.principals


def test_an_entry_lasts_at_most_the_cache_time() -> None:
    cache = VerifiedTokenCache(ttl_s=0.2)
    cache.put("token", {"sub": "a"}, "jwt", time.time() + 3600)
    assert cache.get("token") is not None
    time.sleep(0.3)
    assert cache.get("token") is None


def test_the_cache_is_bounded() -> None:
    cache = VerifiedTokenCache(ttl_s=30, max_entries=3)
    far = time.time() + 3600
    for i in range(5):
        cache.put(f"token-{i}", {"sub": str(i)}, "jwt", far)
    assert len(cache) == 3
    assert cache.get("token-0") is None and cache.get("token-1") is None
    found = cache.get("token-4")
    assert found is not None and found.claims == {"sub": "4"}
