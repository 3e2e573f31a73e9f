"""Insecure auth modes stay on loopback unless the operator opts in, loudly (issue 8, hole 4)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from core.errors import ConfigError
from server.http.bind import check_bind, is_loopback
from server.settings import Settings
from tests.support.server_process import KB, REPO, server_env


def settings_for(mode: str, host: str, **auth: object) -> Settings:
    return Settings(auth={"mode": mode, **auth}, http={"host": host})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_are_fine_in_every_mode(host: str) -> None:
    assert is_loopback(host)
    for mode in ("dev", "none", "prod"):
        check_bind(settings_for(mode, host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "kb.example.com"])
@pytest.mark.parametrize("mode", ["dev", "none"])
def test_insecure_modes_refused_on_reachable_binds(host: str, mode: str) -> None:
    with pytest.raises(ConfigError, match="allow-insecure-bind"):
        check_bind(settings_for(mode, host))
    check_bind(settings_for("prod", host))


def test_explicit_opt_in_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_bind(settings_for("dev", "0.0.0.0"), allow_insecure=True)
        check_bind(settings_for("none", "0.0.0.0", allow_insecure_bind=True))
    insecure = [r for r in caplog.records if r.message.startswith("INSECURE")]
    assert len(insecure) == 2 and all(r.levelno == logging.WARNING for r in insecure)


def test_kb_serve_refuses_dev_mode_on_all_interfaces(tmp_path: Path) -> None:
    env = server_env("postgresql://unused@127.0.0.1:1/none", tmp_path, KB_AUTH__MODE="dev")
    run = subprocess.run(
        [str(KB), "serve", "--host", "0.0.0.0", "--port", "8999"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--allow-insecure-bind" in run.stderr
