"""docs/auth.md stays honest: every YAML example is a valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from server.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "auth.md"


def test_every_yaml_example_is_valid_settings() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4  # Okta, Entra ID, Keycloak, JWKS file
    for block in blocks:
        settings = Settings(**yaml.safe_load(block))
        assert settings.auth.issuer
        assert settings.auth.jwks_url or settings.auth.jwks_file
