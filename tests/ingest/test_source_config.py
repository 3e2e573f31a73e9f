"""Stored source configuration keeps ${VAR} references and never a literal credential."""

from __future__ import annotations

import pytest

from connectors.registry import parse_source_config
from core.errors import InvalidRequest
from server.ingest.sources import literal_secrets, refuse_literal_secrets, stored_config


def test_env_references_are_kept_and_literal_secrets_masked_or_refused() -> None:
    config = parse_source_config(
        {
            "name": "hr",
            "kind": "sql",
            "url": "mysql+pymysql://kb:${HR_DB_PASSWORD}@db.internal/hr",
            "tables": [{"table": "staff", "primary_key": "id", "text_template": "{bio}"}],
        }
    )
    stored = stored_config(config)
    assert stored["url"] == "mysql+pymysql://kb:${HR_DB_PASSWORD}@db.internal/hr"
    assert literal_secrets(stored) == []

    raw = {"name": "x", "kind": "custom", "options": {"api_token": "abc123", "password": "${PW}"}}
    assert literal_secrets(raw) == ["options.api_token"]
    with pytest.raises(InvalidRequest, match=r"options\.api_token"):
        refuse_literal_secrets(raw)
    assert literal_secrets({"url": "postgresql://kb:hunter2@db/kb"}) == ["url"]
