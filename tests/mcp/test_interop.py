"""Independent clients against the real server: the MCP Inspector CLI (both protocol eras,
over HTTP with a bearer token and over stdio through ``kb mcp``) and the TypeScript SDK v1.

The clients are the pinned Node packages from tests/node (``make node`` installs them).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from tests.mcp.conftest import Corpus, Live
from tests.support.node import NODE_DIR, run_node_tool
from tests.support.server_process import KB

pytestmark = pytest.mark.node

ERAS: dict[str, list[str]] = {"legacy": [], "modern": ["--protocol-era", "modern"]}
SEARCH = ["--method", "tools/call", "--tool-name", "search", "--tool-arg", "query=deployment"]
LIST = ["--method", "tools/list"]


def _json(run: CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(run.stdout)
    return data


def _inspector_runs(
    target: list[str], home: Path, *, timeout: float = 120
) -> dict[tuple[str, str], dict[str, Any]]:
    """tools/list and a search, in both eras, run side by side."""
    jobs = {
        (era, what): [
            "inspector",
            "--cli",
            *flags,
            *args,
            "--format",
            "json",
            "--quiet",
            "--connect-timeout",
            str(int(timeout * 1000)),
            *target,
        ]
        for era, flags in ERAS.items()
        for what, args in (("list", LIST), ("search", SEARCH))
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {
            key: pool.submit(run_node_tool, cmd, home / f"{key[0]}-{key[1]}", timeout=timeout + 30)
            for key, cmd in jobs.items()
        }
        return {key: _json(f.result()) for key, f in futures.items()}


def _check(results: dict[tuple[str, str], dict[str, Any]]) -> None:
    for era in ERAS:
        tools = {t["name"] for t in results[(era, "list")]["result"]["tools"]}
        assert tools == {"search", "fetch", "list_sources"}, era
        found = results[(era, "search")]["result"]
        assert found["isError"] is False, era
        titles = [r["title"] for r in found["structuredContent"]["results"]]
        assert titles[0] == "Deployment runbook", era
        assert "Salary review process" not in titles, era


def test_inspector_over_http_with_a_bearer_token(live: Live, tmp_path: Path) -> None:
    target = [f"{live.url}/mcp", "--header", f"Authorization: Bearer {live.tokens['alice']}"]
    _check(_inspector_runs(target, tmp_path))


def test_inspector_over_stdio(corpus: Corpus, policy_file: Path, tmp_path: Path) -> None:
    env = {
        "KB_DATABASE__URL": corpus.dsn,
        "KB_HOME": str(tmp_path / "kb-home"),
        "KB_POLICY_FILE": str(policy_file),
        "KB_CONFIG": str(policy_file.with_name("empty.yaml")),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    policy_file.with_name("empty.yaml").write_text("{}\n")
    target = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
    target += ["--", str(KB), "mcp", "--as", "user:alice", "--group", "group:eng"]
    _check(_inspector_runs(target, tmp_path, timeout=180))


def test_typescript_sdk_v1_client(live: Live, tmp_path: Path) -> None:
    run = run_node_tool(
        ["node", str(NODE_DIR / "sdk_client.mjs"), f"{live.url}/mcp", live.tokens["bob"], "salary"],
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["server"]["name"] == "kb"
    assert set(out["tools"]) == {"search", "fetch", "list_sources"}
    assert out["results"][0]["title"] == "Salary review process"
    assert "April" in out["resourceText"]
    assert "kb://sources/hr" in out["resources"] and "kb://sources/wiki" not in out["resources"]
    assert os.path.exists(NODE_DIR / "package-lock.json")
