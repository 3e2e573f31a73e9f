"""docker-compose defaults to prod with a required password; dev is an explicit override."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    return data


def test_production_file_runs_prod_and_has_no_default_password() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    compose = load("docker-compose.yml")
    for name in ("migrate", "server", "worker"):
        env = compose["services"][name]["environment"]
        assert env["KB_AUTH__MODE"] == "prod", name
        assert "KB_AUTH__ALLOW_INSECURE_BIND" not in env
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    assert "POSTGRES_PASSWORD:-" not in text and "kb-dev-only" not in text
    assert "--load-examples" not in compose["services"]["server"]["command"]


def test_dev_override_opts_in_explicitly() -> None:
    dev = load("docker-compose.dev.yml")["services"]
    assert dev["server"]["environment"]["KB_AUTH__MODE"] == "dev"
    assert dev["server"]["environment"]["KB_AUTH__ALLOW_INSECURE_BIND"] == "true"
    assert dev["worker"]["environment"]["KB_AUTH__MODE"] == "dev"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker-compose.dev.yml" in readme and "--allow-insecure-bind" in readme


def test_compose_files_validate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "KB_PUBLISH")}

    def config(*files: str, **extra: str) -> subprocess.CompletedProcess[str]:
        args = ["docker-compose"] + [a for f in files for a in ("-f", str(ROOT / f))] + ["config"]
        return subprocess.run(
            args, env={**env, **extra}, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    refused = config("docker-compose.yml")
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr
    prod = config("docker-compose.yml", POSTGRES_PASSWORD="x")
    assert prod.returncode == 0, prod.stderr
    assert "KB_AUTH__MODE: dev" not in prod.stdout
    dev = config(
        "docker-compose.yml",
        "docker-compose.dev.yml",
        POSTGRES_PASSWORD="x",
        KB_PUBLISH="127.0.0.1:8000",
    )
    assert dev.returncode == 0, dev.stderr
    assert "KB_AUTH__MODE: dev" in dev.stdout and "127.0.0.1:8000:8000" in dev.stdout
