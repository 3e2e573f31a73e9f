"""The pinned Node 22 and MCP clients installed by ``tests/node/install.sh`` (``make node``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
BIN = NODE_DIR / "node_modules" / ".bin"


def node_env(home: Path) -> dict[str, str]:
    """Environment for the Node tools: our Node first on PATH, state kept under ``home``."""
    if not (BIN / "node").exists():
        raise RuntimeError(
            "the Node test clients are missing: run `make node` (tests/node/install.sh)"
        )
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "MCP_CATALOG_PATH": str(home / "catalog.json"),
        "MCP_CLIENT_CONFIG_PATH": str(home / "client.json"),
        "NO_COLOR": "1",
        "CI": "true",
    }


def run_node_tool(
    args: list[str], home: Path, *, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one of the installed tools (``conformance``, ``inspector``, ``node``)."""
    env = node_env(home)
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        cwd=cwd or home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
