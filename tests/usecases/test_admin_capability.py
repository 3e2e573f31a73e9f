"""The admin capability: minted only by policies/, refused to narrowed API keys, required
by every /admin route (issue 8: "an admin API key narrowed to one source keeps full
/admin rights")."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from core.errors import AccessDenied
from core.identity import Caller
from policies.capability import AdminCaller, mint_admin
from policies.engine import PolicyEngine
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings.base import Embedder
from server.settings import Settings
from tests.auth.test_http_auth import bearer, serve


def test_only_policies_mint_the_capability() -> None:
    root = Caller.of("user:root", "role:admin", transport="rest")
    with pytest.raises(TypeError, match="minted by policies"):
        AdminCaller(root, token=object())
    admin = mint_admin(root, PolicyEngine.empty())
    assert admin.caller is root
    with pytest.raises(AttributeError):
        admin.caller = Caller.of("user:eve", transport="rest")
    # Through settings.auth.admin_principals (the snapshot links them to role:admin).
    assert mint_admin(Caller.of("user:boss"), PolicyEngine.empty(["user:boss"])).subject
    with pytest.raises(AccessDenied, match="admin role"):
        mint_admin(Caller.of("user:eve"), PolicyEngine.empty())


def test_a_narrowed_key_is_never_an_admin() -> None:
    engine = PolicyEngine.empty(["svc:ops"])
    narrowed = Caller(
        subject="svc:ops",
        principals=frozenset({"svc:ops"}),
        transport="rest",
        restrict_sources=frozenset({"wiki"}),
    )
    with pytest.raises(AccessDenied, match="narrowed"):
        mint_admin(narrowed, engine)
    collections = Caller(
        subject="svc:ops",
        principals=frozenset({"svc:ops"}),
        transport="rest",
        restrict_collections=frozenset({"eng"}),
    )
    with pytest.raises(AccessDenied, match="narrowed"):
        mint_admin(collections, engine)


def test_narrowed_admin_api_key_is_refused_on_every_admin_route(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
) -> None:
    admins = ["user:root", "svc:ops", "svc:ops-all"]
    with serve(make_settings, db_target, embedder, mode="dev", admin_principals=admins) as (
        url,
        settings,
    ):
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        root = bearer(issuer.mint("root", scopes=["kb.admin"]))
        narrowed = httpx.post(
            f"{url}/admin/keys", headers=root, json={"name": "ops", "sources": ["wiki"]}
        )
        whole = httpx.post(f"{url}/admin/keys", headers=root, json={"name": "ops-all"})
        assert narrowed.status_code == whole.status_code == 201
        key = bearer(narrowed.json()["secret"])
        for method, path in [
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys"),
            ("GET", "/admin/policies"),
            ("GET", "/admin/sources"),
            ("GET", "/admin/audit"),
        ]:
            kwargs = {"json": {"name": "escape"}} if method == "POST" else {}
            r = httpx.request(method, f"{url}{path}", headers=key, **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 403, (path, r.status_code, r.text)
            assert "narrowed" in r.json()["detail"]
        # The same principal on an unnarrowed key still administers.
        assert httpx.get(f"{url}/admin/keys", headers=bearer(whole.json()["secret"])).is_success
        # Every refusal is in the log, with who was refused.
        rows = httpx.get(f"{url}/admin/audit", headers=root, params={"principal": "svc:ops"})
        refused = [r for r in rows.json() if r["method"] == "admin.authorize"]
        assert len(refused) == 5 and all(r["outcome"] == "denied" for r in refused)
        names = [k["name"] for k in httpx.get(f"{url}/admin/keys", headers=root).json()]
        assert "escape" not in names


def test_one_leeway_on_every_door(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
) -> None:
    """A token expired 20 s ago, inside the 30 s leeway: /admin took it and /mcp refused it
    (the SDK compared the bare exp with the clock). Now both take it, and both refuse one
    expired beyond the leeway."""
    with serve(make_settings, db_target, embedder, mode="dev", admin_principals=["user:root"]) as (
        url,
        settings,
    ):
        assert settings.auth.leeway_s == 30
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        mcp_request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        mcp_headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        }
        for ttl, accepted in ((-20, True), (-45, False)):
            token = issuer.mint("root", scopes=["kb.read", "kb.admin"], ttl_s=ttl)
            admin = httpx.get(f"{url}/admin/keys", headers=bearer(token))
            mcp = httpx.post(
                f"{url}/mcp", headers={**bearer(token), **mcp_headers}, json=mcp_request
            )
            assert (admin.status_code == 200) is accepted, (ttl, admin.status_code)
            assert (mcp.status_code != 401) is accepted, (ttl, mcp.status_code, mcp.text)
