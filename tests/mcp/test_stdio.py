"""``kb mcp``: the stdio caller comes from the command line or the config, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from server.cli.main import app
from server.mcp.stdio import stdio_caller


def test_stdio_caller_from_principals() -> None:
    caller = stdio_caller(["user:alice", "group:eng", "group:eng"])
    assert caller.subject == "user:alice"
    assert caller.principals == {"user:alice", "group:eng"}
    assert caller.transport == "stdio"


@pytest.mark.parametrize(
    ("principals", "message"),
    [
        ([], "--as user:NAME"),
        (["alice"], "not a principal: alice"),
        (["group:eng", "user:alice"], "must name the user"),
    ],
)
def test_stdio_caller_refuses_unclear_identities(principals: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        stdio_caller(principals)


def test_kb_mcp_without_identity_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "kb.yaml"
    config.write_text("stdio:\n  principals: []\n")
    result = CliRunner().invoke(app, ["--config", str(config), "mcp"])
    assert result.exit_code == 2
    assert "--as user:NAME" in result.output


def test_kb_mcp_rejects_a_bad_group(tmp_path: Path) -> None:
    config = tmp_path / "kb.yaml"
    config.write_text("{}\n")
    result = CliRunner().invoke(app, ["--config", str(config), "mcp", "--as", "role:x"])
    assert result.exit_code == 2
    assert "must name the user" in result.output
