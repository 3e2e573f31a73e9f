"""Claims -> principals for the identity providers we document (Okta, Entra ID, Keycloak)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.errors import AuthError
from server.auth.principals import caller_from_claims, scopes_of
from server.settings import AuthSettings


def principals(claims: dict[str, Any], **settings: Any) -> set[str]:
    return set(caller_from_claims(claims, AuthSettings(**settings), transport="http").principals)


def test_okta_groups_and_verified_email() -> None:
    claims = {
        "sub": "00u1abcd",
        "cid": "0oa-client",
        "email": "Alice@Example.com",
        "email_verified": True,
        "groups": ["Everyone", "eng"],
        "scp": ["kb.read", "openid"],
    }
    assert principals(claims) == {
        "user:00u1abcd",
        "email:alice@example.com",
        "group:Everyone",
        "group:eng",
    }
    assert scopes_of(claims) == {"kb.read", "openid"}


def test_unverified_email_is_ignored() -> None:
    for verified in (False, "false", None, 1):
        claims: dict[str, Any] = {
            "sub": "u1",
            "email": "a@b.c",
            "email_verified": verified,
            "groups": [],
        }
        assert principals(claims) == {"user:u1"}


def test_entra_group_overage_means_no_groups(caplog: pytest.LogCaptureFixture) -> None:
    claims = {
        "sub": "entra-sub-overage",
        "oid": "o1",
        "azp": "app-1",
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/..."}},
        "scp": "kb.read",
    }
    with caplog.at_level(logging.WARNING, logger="server.auth.principals"):
        assert principals(claims) == {"user:entra-sub-overage"}
    assert any("overflowed" in m for m in caplog.messages)
    # The implicit-flow flavour of overage as well.
    assert principals({"sub": "entra-2", "hasgroups": True, "groups": ["x"]}) == {"user:entra-2"}


def test_entra_groups_are_object_ids() -> None:
    claims = {"sub": "s", "groups": ["6f2f8c3a-0000-4000-8000-000000000001"]}
    assert "group:6f2f8c3a-0000-4000-8000-000000000001" in principals(claims)


def test_keycloak_realm_roles_path() -> None:
    claims = {
        "sub": "kc-user",
        "azp": "kb-web",
        "realm_access": {"roles": ["offline_access", "eng"]},
        "groups": ["ignored-here"],
    }
    assert principals(claims, groups_claim="realm_access.roles") == {
        "user:kc-user",
        "group:offline_access",
        "group:eng",
    }


def test_missing_or_malformed_groups_claim_means_no_groups(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.auth.principals"):
        assert principals({"sub": "nogroups-1"}) == {"user:nogroups-1"}
        assert principals({"sub": "nogroups-2", "groups": {"a": 1}}) == {"user:nogroups-2"}
        assert principals({"sub": "nogroups-3", "groups": ["", 5, "ok"]}) == {
            "user:nogroups-3",
            "group:ok",
        }
    assert any("no 'groups' claim" in m for m in caplog.messages)


def test_client_credentials_become_svc() -> None:
    # Okta / Auth0: sub equals the client id.
    assert principals({"sub": "svc-client", "cid": "svc-client", "client_id": "svc-client"}) == {
        "svc:svc-client"
    }
    # No sub at all, client id in azp.
    assert principals({"azp": "batch-job", "groups": ["admins"]}) == {"svc:batch-job"}
    # Entra ID app-only token.
    assert principals({"sub": "sp-object-id", "appid": "app-guid", "idtyp": "app"}) == {
        "svc:app-guid"
    }
    # A service never picks up groups or e-mail from its token.
    claims = {
        "sub": "c",
        "client_id": "c",
        "groups": ["eng"],
        "email": "x@y.z",
        "email_verified": True,
    }
    assert principals(claims) == {"svc:c"}


def test_token_naming_nobody_is_refused() -> None:
    with pytest.raises(AuthError):
        caller_from_claims({"scope": "kb.read"}, AuthSettings(), transport="http")
