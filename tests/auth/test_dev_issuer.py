"""The development issuer's key file and tokens, and `kb token mint`."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from core.errors import AuthError
from server.auth.dev_issuer import DEV_ISSUER, KEY_FILE, DevIssuer
from server.cli.main import app


def test_key_is_created_once_with_0600(tmp_path: Path) -> None:
    first = DevIssuer(tmp_path / "home", audience="http://127.0.0.1:8000/mcp")
    key_file = tmp_path / "home" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    second = DevIssuer(tmp_path / "home", audience="http://127.0.0.1:8000/mcp")
    assert key_file.read_bytes() == pem and second.kid == first.kid
    token = first.mint("alice", groups=["eng"], scopes=["kb.read"], ttl_s=120)
    claims = second.verify(token, leeway_s=0)
    assert claims["iss"] == DEV_ISSUER and claims["sub"] == "alice"
    assert claims["groups"] == ["eng"] and claims["scope"] == "kb.read"
    assert jwt.get_unverified_header(token)["alg"] == "ES256"


def test_tokens_of_another_home_or_audience_are_refused(tmp_path: Path) -> None:
    mine = DevIssuer(tmp_path / "a", audience="http://127.0.0.1:8000/mcp")
    theirs = DevIssuer(tmp_path / "b", audience="http://127.0.0.1:8000/mcp")
    with pytest.raises(AuthError):
        mine.verify(theirs.mint("alice"), leeway_s=0)
    elsewhere = DevIssuer(tmp_path / "a", audience="http://other:9000/mcp")
    with pytest.raises(AuthError, match="audience"):
        mine.verify(elsewhere.mint("alice"), leeway_s=0)


def test_kb_token_mint(tmp_path: Path) -> None:
    cfg = tmp_path / "kb.yaml"
    cfg.write_text(
        f"home: {tmp_path / 'home'}\nauth:\n  mode: dev\n  groups_claim: realm_access.roles\n"
    )
    # Minting an admin token is audited, so the database must be at head first (only
    # `kb db upgrade` and `kb serve` migrate).
    upgraded = CliRunner().invoke(app, ["--config", str(cfg), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(cfg),
            "token",
            "mint",
            "--sub",
            "alice",
            "-g",
            "eng",
            "-g",
            "hr",
            "--email",
            "alice@example.com",
            "--admin",
            "--ttl",
            "600",
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    issuer = DevIssuer(tmp_path / "home", audience="http://127.0.0.1:8000/mcp")
    claims = issuer.verify(token, leeway_s=0)
    assert claims["realm_access"] == {"roles": ["eng", "hr"]}
    assert claims["email_verified"] is True
    assert set(claims["scope"].split()) == {"kb.read", "kb.admin"}
    assert 590 <= claims["exp"] - claims["iat"] <= 600


def test_kb_token_mint_warns_outside_dev_mode(tmp_path: Path) -> None:
    cfg = tmp_path / "kb.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\nauth:\n  mode: prod\n")
    result = CliRunner().invoke(app, ["--config", str(cfg), "token", "mint", "--sub", "bob"])
    assert result.exit_code == 0
    assert "refuses development tokens" in result.stderr
    assert result.stdout.count(".") == 2
