"""`kb keys` and `kb audit` against a real database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.cli.main import app
from server.usecases.admin import os_user


@pytest.fixture
def config(tmp_path: Path, fresh_database: str) -> Path:
    cfg = tmp_path / "kb.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\ndatabase:\n  url: {fresh_database}\n")
    return cfg


def kb(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_keys_and_audit_commands(config: Path) -> None:
    code, out, err = kb(config, "keys", "create", "etl", "--days", "30", "--source", "wiki")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("kb_") and "only time" in err
    prefix = secret.split("_")[1]

    code, out, err = kb(config, "keys", "list")
    assert code == 0, err
    # (The console is 80 columns here: only the unwrapped columns are checked verbatim.)
    assert prefix in out and "svc:etl" in out and "active" in out
    assert secret not in out

    code, out, err = kb(config, "keys", "rotate", prefix)
    assert code == 0, err
    new_prefix = out.strip().split("_")[1]
    assert new_prefix != prefix

    code, out, err = kb(config, "keys", "revoke", new_prefix)
    assert code == 0 and "revoked" in out
    code, out, _ = kb(config, "keys", "list", "--all")
    assert out.count("revoked") == 2

    # Errors are one clear line and a non-zero exit.
    code, _, err = kb(config, "keys", "revoke", "nosuchprefix")
    assert code == 1 and "no API key" in err
    code, _, err = kb(config, "keys", "create", "Bad Name")
    assert code == 1 and "invalid key name" in err
    code, _, err = kb(config, "keys", "create", "x", "--expires", "soon")
    assert code == 1 and "not an ISO date" in err

    # Every admin command above left an audit row (the refused ones as invalid).
    code, out, err = kb(config, "audit", "tail", "-n", "50")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    methods = [(r["method"], r["outcome"]) for r in rows]
    assert ("keys.create", "ok") in methods
    assert ("keys.create", "invalid") in methods
    assert ("keys.revoke", "not_found") in methods
    # One identity for the operator on every command (it was svc:cli:x, cli:x or nothing).
    operator = sorted(["role:admin", f"user:cli:{os_user()}"])
    assert all(r["transport"] == "cli" and r["client_id"] == "kb-cli" for r in rows)
    assert all(r["principals"] == operator for r in rows)

    code, out, err = kb(config, "audit", "export", "--since", "2000-01-01", "--format", "csv")
    assert code == 0, err
    exported = list(csv.DictReader(io.StringIO(out)))
    assert len(exported) == len(rows) + 2  # plus the tail and the export themselves
    assert [r["method"] for r in exported[-2:]] == ["audit.read", "audit.export"]
    assert json.loads(exported[0]["principals"]) == operator

    code, _, err = kb(config, "audit", "export", "--since", "yesterday")
    assert code == 1 and "not an ISO date" in err
