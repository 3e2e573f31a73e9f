"""JWKS over HTTP (cache, refresh on unknown kid, rate limit) and the MCP SDK verifier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.auth.jwks import JwksSource, KeyNotFound
from server.auth.mcp_verifier import KbTokenVerifier, current_mcp_caller
from server.auth.service import Authenticator, metadata_url, resource_uri
from server.db.engine import Database, DatabaseTarget
from server.settings import Settings
from tests.auth.conftest import ISSUER, KeyPair, claims_for, new_ec, write_jwks
from tests.support.live_server import LiveServer


class JwksServer:
    """A tiny issuer that serves a mutable JWKS and counts fetches."""

    def __init__(self, *keys: KeyPair) -> None:
        self.keys = list(keys)
        self.hits = 0

        async def jwks(request: Request) -> JSONResponse:
            self.hits += 1
            return JSONResponse({"keys": [k.jwk() for k in self.keys]})

        self.app = Starlette(routes=[Route("/jwks", jwks)])


@pytest.mark.anyio
async def test_jwks_url_refreshes_on_unknown_kid_with_rate_limit(
    rsa_key: KeyPair, ec_key: KeyPair
) -> None:
    issuer = JwksServer(rsa_key)
    with LiveServer(issuer.app) as srv:
        source = JwksSource(url=f"{srv.url}/jwks", refresh_interval_s=3600)
        assert (await source.key_for(rsa_key.kid, "RS256")).kid == rsa_key.kid
        assert (await source.key_for(rsa_key.kid, "RS256")).kid == rsa_key.kid
        assert issuer.hits == 1  # cached
        # A forged kid: one refresh, then the rate limit holds further fetches off.
        for _ in range(5):
            with pytest.raises(KeyNotFound):
                await source.key_for("forged", "RS256")
        assert issuer.hits == 1  # the first refresh is within the interval of the load
        # The issuer rotates in a new key; after the interval, the unknown kid refreshes once.
        issuer.keys.append(ec_key)
        source.refresh_interval_s = 0
        assert (await source.key_for(ec_key.kid, "ES256")).kid == ec_key.kid
        assert issuer.hits == 2
        # An alg that does not fit the key type is not served by that key.
        with pytest.raises(KeyNotFound):
            await source.key_for(ec_key.kid, "RS256")


@pytest.mark.anyio
async def test_jwks_url_down_keeps_old_keys(rsa_key: KeyPair) -> None:
    issuer = JwksServer(rsa_key)
    with LiveServer(issuer.app) as srv:
        source = JwksSource(url=f"{srv.url}/jwks", refresh_interval_s=0)
        await source.key_for(rsa_key.kid, "RS256")
    # The issuer is gone: the cached key still verifies; an unknown kid is still refused.
    assert (await source.key_for(rsa_key.kid, "RS256")).kid == rsa_key.kid
    with pytest.raises(KeyNotFound):
        await source.key_for("other", "RS256")


def sdk_protected_app(verifier: KbTokenVerifier, settings: Settings) -> Starlette:
    """The wiring the MCP SDK uses for /mcp: bearer backend, auth context, scope check."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        caller = current_mcp_caller()
        body: dict[str, Any] = {"principals": sorted(caller.principals) if caller else None}
        await JSONResponse(body)(scope, receive, send)

    protected = RequireAuthMiddleware(endpoint, ["kb.read"], AnyHttpUrl(metadata_url(settings)))
    return Starlette(
        routes=[Route("/mcp", protected)],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerAuthBackend(
                    verifier, resource_server_url=AnyHttpUrl(resource_uri(settings))
                ),
            ),
            Middleware(AuthContextMiddleware),
        ],
    )


def test_mcp_sdk_verifier_carries_our_caller(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    rsa_key: KeyPair,
    tmp_path: Path,
) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_key)
    settings = make_settings(auth={"mode": "prod", "issuer": ISSUER, "jwks_file": str(jwks)})
    authenticator = Authenticator(settings, Database.open(db_target, settings))
    app = sdk_protected_app(KbTokenVerifier(authenticator), settings)
    aud = resource_uri(settings)
    with LiveServer(app) as srv:
        token = rsa_key.sign(claims_for(aud, groups=["eng"]))
        r = httpx.get(f"{srv.url}/mcp", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert r.json() == {"principals": ["group:eng", "user:alice"]}
        # Refusals surface as the SDK's 401 / 403 with our metadata URL.
        bad = new_ec("nope").sign(claims_for(aud))
        r = httpx.get(f"{srv.url}/mcp", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
        assert metadata_url(settings) in r.headers["www-authenticate"]
        no_scope = rsa_key.sign(claims_for(aud, scope="openid"))
        r = httpx.get(f"{srv.url}/mcp", headers={"Authorization": f"Bearer {no_scope}"})
        assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"]


@pytest.mark.anyio
async def test_unreachable_issuer_is_not_hammered(rsa_key: KeyPair) -> None:
    issuer = JwksServer(rsa_key)
    server = LiveServer(issuer.app)
    url = f"{server.url}/jwks"
    source = JwksSource(url=url, refresh_interval_s=3600, timeout_s=1)
    # Nothing listens yet: the first lookup fails, the next ones do not even try.
    with pytest.raises(KeyNotFound):
        await source.key_for(rsa_key.kid, "RS256")
    with server:
        for _ in range(3):
            with pytest.raises(KeyNotFound):
                await source.key_for(rsa_key.kid, "RS256")
        assert issuer.hits == 0
        source.refresh_interval_s = 0
        assert (await source.key_for(rsa_key.kid, "RS256")).kid == rsa_key.kid
        assert issuer.hits == 1
