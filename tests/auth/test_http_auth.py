"""Bearer JWTs through real HTTP (uvicorn in a thread): every refusal and every success."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from core.identity import Caller
from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.http.deps import current_caller
from server.settings import Settings
from tests.auth.conftest import (
    ISSUER,
    KeyPair,
    claims_for,
    hs256_with_public_key,
    new_rsa,
    unsigned_token,
    write_jwks,
)
from tests.support.live_server import LiveServer, free_port


def add_whoami(app: FastAPI) -> None:
    """A protected test route: any authenticated caller holding the required scopes."""

    @app.get("/whoami")
    async def whoami(caller: Caller = Depends(current_caller)) -> dict[str, Any]:
        return {
            "subject": caller.subject,
            "principals": sorted(caller.principals),
            "client_id": caller.client_id,
            "restrict_sources": sorted(caller.restrict_sources)
            if caller.restrict_sources
            else None,
            "restrict_collections": (
                sorted(caller.restrict_collections) if caller.restrict_collections else None
            ),
        }


@contextmanager
def serve(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    **auth: Any,
) -> Iterator[tuple[str, Settings]]:
    port = free_port()
    settings = make_settings(http={"port": port}, auth=auth)
    app = create_app(settings, target=db_target, embedder=embedder)
    add_whoami(app)
    with LiveServer(app, port=port) as srv:
        yield srv.url, settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_prod_issuer_tokens(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    rsa_key: KeyPair,
    ec_key: KeyPair,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_key, ec_key)
    with serve(
        make_settings,
        db_target,
        embedder,
        mode="prod",
        issuer=ISSUER,
        jwks_file=str(jwks),
        admin_principals=["user:root"],
        authorization_servers=[ISSUER],
    ) as (url, settings):
        aud = resource_uri(settings)
        metadata_url = f"{url}/.well-known/oauth-protected-resource/mcp"

        # No token: 401 pointing at the RFC 9728 metadata, no error code (RFC 6750 3.1).
        r = httpx.get(f"{url}/whoami")
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert f'resource_metadata="{metadata_url}"' in challenge
        assert "error=" not in challenge

        # The metadata document itself, at the host root, in both spellings.
        for path in (
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
        ):
            meta = httpx.get(f"{url}{path}")
            assert meta.status_code == 200
            doc = meta.json()
            assert doc["resource"] == aud
            assert doc["authorization_servers"] == [ISSUER]
            assert doc["bearer_methods_supported"] == ["header"]
            assert "kb.read" in doc["scopes_supported"]

        # Valid tokens from both keys (RS256 and ES256, chosen by kid).
        for key in (rsa_key, ec_key):
            r = httpx.get(f"{url}/whoami", headers=bearer(key.sign(claims_for(aud))))
            assert r.status_code == 200, r.text
            assert r.json()["subject"] == "user:alice"

        now = int(time.time())
        other = new_rsa(rsa_key.kid)  # same kid, different key: a forged signature
        refused = {
            "wrong audience": rsa_key.sign(claims_for("https://other.example/mcp")),
            "expired": rsa_key.sign(claims_for(aud, exp=now - 3600, iat=now - 7200)),
            "not yet valid": rsa_key.sign(claims_for(aud, nbf=now + 3600)),
            "wrong issuer": rsa_key.sign(claims_for(aud, iss="https://evil.example")),
            "bad signature": other.sign(claims_for(aud)),
            "unknown kid": new_rsa("nobody").sign(claims_for(aud)),
            "alg none": unsigned_token(claims_for(aud)),
            "hs256 with public key": hs256_with_public_key(claims_for(aud), rsa_key),
            "no exp": rsa_key.sign(claims_for(aud, exp=None)),
            "garbage": "not-a-jwt",
        }
        for why, token in refused.items():
            r = httpx.get(f"{url}/whoami", headers=bearer(token))
            assert r.status_code == 401, why
            assert 'error="invalid_token"' in r.headers["www-authenticate"], why
            assert f'resource_metadata="{metadata_url}"' in r.headers["www-authenticate"], why

        # Tampered payload with a valid signature part from another token.
        good = rsa_key.sign(claims_for(aud)).split(".")
        evil = rsa_key.sign(claims_for(aud, sub="root")).split(".")
        spliced = ".".join([good[0], evil[1], good[2]])
        assert httpx.get(f"{url}/whoami", headers=bearer(spliced)).status_code == 401

        # A wrong scheme is a 401 too.
        assert (
            httpx.get(f"{url}/whoami", headers={"Authorization": "Basic YTpi"}).status_code == 401
        )

        # Valid token without the required scope: 403 insufficient_scope.
        r = httpx.get(
            f"{url}/whoami", headers=bearer(rsa_key.sign(claims_for(aud, scope="openid")))
        )
        assert r.status_code == 403
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert 'scope="kb.read"' in r.headers["www-authenticate"]
        # `scp` as a list (Entra ID style) also counts.
        r = httpx.get(
            f"{url}/whoami",
            headers=bearer(rsa_key.sign(claims_for(aud, scope=None, scp=["kb.read"]))),
        )
        assert r.status_code == 200

        # Admin endpoints: 403 for a non-admin, 403 for an admin without the admin scope,
        # 200 for an admin with it.
        user = rsa_key.sign(claims_for(aud, scope="kb.read kb.admin"))
        assert httpx.get(f"{url}/admin/keys", headers=bearer(user)).status_code == 403
        root_no_scope = rsa_key.sign(claims_for(aud, sub="root", scope="kb.read"))
        r = httpx.get(f"{url}/admin/keys", headers=bearer(root_no_scope))
        assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"]
        root = rsa_key.sign(claims_for(aud, sub="root", scope="kb.admin"))
        assert httpx.get(f"{url}/admin/keys", headers=bearer(root)).status_code == 200
        assert httpx.get(f"{url}/admin/audit", headers=bearer(root)).status_code == 200

        # A development token is refused in prod mode, with a log line.
        dev = DevIssuer(settings.home_dir, audience=aud).mint("alice", scopes=["kb.read"])
        with caplog.at_level(logging.WARNING, logger="server.auth.service"):
            r = httpx.get(f"{url}/whoami", headers=bearer(dev))
        assert r.status_code == 401
        assert any("development token was refused" in m for m in caplog.messages)

        # Key rotation by kid: the issuer publishes a new key and drops the old one.
        new_key = new_rsa("rsa-2")
        write_jwks(jwks, new_key, ec_key)
        os.utime(jwks, (time.time() + 5, time.time() + 5))
        r = httpx.get(f"{url}/whoami", headers=bearer(new_key.sign(claims_for(aud))))
        assert r.status_code == 200, r.text
        # The old key's token: byte for byte one that was verified (and cached) above when
        # the clock has not moved a second since, so this also proves the drop reaches cached
        # tokens.
        r = httpx.get(f"{url}/whoami", headers=bearer(rsa_key.sign(claims_for(aud))))
        assert r.status_code == 401


def test_dev_tokens_in_dev_mode(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    with serve(
        make_settings,
        db_target,
        embedder,
        mode="dev",
        groups_claim="realm_access.roles",
        admin_principals=["user:root"],
    ) as (url, settings):
        issuer = DevIssuer(
            settings.home_dir, audience=resource_uri(settings), groups_claim="realm_access.roles"
        )
        token = issuer.mint("alice", groups=["eng"], email="Alice@Example.com", scopes=["kb.read"])
        r = httpx.get(f"{url}/whoami", headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.json()["principals"] == ["email:alice@example.com", "group:eng", "user:alice"]
        # An expired dev token is refused like any other.
        expired = issuer.mint("alice", scopes=["kb.read"], ttl_s=-3600)
        assert httpx.get(f"{url}/whoami", headers=bearer(expired)).status_code == 401
        # No issuer is configured: a foreign JWT is refused, the dev one still works.
        foreign = new_rsa("x").sign(claims_for(resource_uri(settings)))
        assert httpx.get(f"{url}/whoami", headers=bearer(foreign)).status_code == 401

        # The admin role granted by policy (a group holding role:admin), not by settings.
        root = bearer(issuer.mint("root", scopes=["kb.admin"]))
        carol = bearer(issuer.mint("carol", groups=["ops"], scopes=["kb.admin"]))
        assert httpx.get(f"{url}/admin/keys", headers=carol).status_code == 403
        r = httpx.post(
            f"{url}/admin/policies/roles",
            headers=root,
            json={"member": "group:ops", "role": "role:admin"},
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 5
        while httpx.get(f"{url}/admin/keys", headers=carol).status_code != 200:
            assert time.monotonic() < deadline, "the policy change did not make carol an admin"
            time.sleep(0.05)


def test_prod_without_issuer_starts_and_refuses_jwts(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    rsa_key: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="server.auth.service"):
        with serve(make_settings, db_target, embedder, mode="prod") as (url, settings):
            token = rsa_key.sign(claims_for(resource_uri(settings)))
            r = httpx.get(f"{url}/whoami", headers=bearer(token))
            assert r.status_code == 401
            assert httpx.get(f"{url}/healthz").status_code == 200
    assert any("no token issuer configured" in m for m in caplog.messages)
    assert any("bearer JWT was refused" in m for m in caplog.messages)
    # The dev key is not even created outside dev mode.
    assert not (settings.home_dir / "dev-signing-key.pem").exists()
