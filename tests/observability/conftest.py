"""One real `kb serve` for the observability tests: JSON logs, a small corpus, traffic.

The server syncs a three-document files source on start (``ingest.sync_on_start``), so
the ingestion figures come from a real run; alice (group:eng) may read it, bob (group:hr)
may not. Before the tests look, the fixture drives real MCP traffic over HTTP: alice's
searches in each mode, bob's empty search and his fetch of alice's document (not found),
and a call of a tool that does not exist.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from prometheus_client.parser import text_string_to_metric_families

from server.db.embedded import EmbeddedPostgres
from tests.conftest import cloned_database
from tests.support.live_server import free_port_in
from tests.support.server_process import KB, REPO, ServerProcess, server_env

# This helper's port range (see the task): no collision with parallel test runs.
PORTS = range(18500, 18600)
_next_port = itertools.count()

POLICY = """
rules:
  - subject: group:eng
    object: collection:eng
    comment: engineering reads its runbooks
"""
DOCS = {
    "backups.md": "# Database backups\n\nNightly backups run at 02:30 with pg_dump. "
    "Restores are tested every month on a scratch server.\n",
    "deploy.md": "# Deployment runbook\n\nDeployments go out on Tuesdays after the "
    "change review. Roll back with the previous image tag.\n",
    "oncall.md": "# On-call rota\n\nThe on-call engineer answers pages within fifteen "
    "minutes and writes the incident report.\n",
}


def port_in_range() -> int:
    # Round the range, so a port just freed by the previous server is tried last.
    return free_port_in(PORTS, next(_next_port) % len(PORTS))


@dataclass
class Served:
    url: str
    env: dict[str, str]
    log_path: Path
    database: str
    tokens: dict[str, str]
    request_ids: dict[str, str]  # what the traffic sent: label -> X-Request-ID

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (the console's own lines are not JSON)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def audit_rows(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.database) as conn:
            cur = conn.execute(
                "SELECT method, target, outcome, request_id, principals, arguments "
                "FROM audit_log ORDER BY id"
            )
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def mint(env: dict[str, str], sub: str, group: str) -> str:
    done = subprocess.run(
        [str(KB), "token", "mint", "--sub", sub, "-g", group],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


async def mcp_calls(
    url: str, token: str, calls: list[tuple[str, dict[str, Any]]], request_id: str | None = None
) -> list[Any]:
    """Call tools over real HTTP with ``token`` (and an X-Request-ID on every request)."""
    headers = {"Authorization": f"Bearer {token}"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    results = []
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, cache=None) as client:
            for name, args in calls:
                results.append(await client.call_tool(name, args))
    return results


def scrape(url: str, token: str | None = None) -> dict[str, Any]:
    """Metric families by name from a real GET /metrics."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=60)
    response.raise_for_status()
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def sample_names(families: dict[str, Any]) -> set[str]:
    """Every series name the families can carry (counters _total, histograms _bucket...)."""
    names: set[str] = set()
    for name, family in families.items():
        names.add(name)
        if family.type == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif family.type == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        names |= {s.name for s in family.samples}
    return names


@pytest.fixture(scope="session")
def served_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    with cloned_database(pg_server, "obs") as uri:
        yield uri


@pytest.fixture(scope="session")
def served(served_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served")
    docs = home / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    (home / "policy.yaml").write_text(POLICY, encoding="utf-8")
    port = port_in_range()
    env = server_env(
        served_database,
        home,
        KB_HTTP__PORT=str(port),  # the dev tokens' audience names the port
        KB_AUTH__MODE="dev",
        KB_LOGGING__FORMAT="json",
        KB_METRICS__DATABASE_INTERVAL_S="0",
    )
    config = {
        "policy_file": str(home / "policy.yaml"),
        "ingest": {"sync_on_start": "missing"},
        "sources": [{"name": "wiki", "kind": "files", "root": str(docs), "collection": "eng"}],
    }
    Path(env["KB_CONFIG"]).write_text(json.dumps(config), encoding="utf-8")
    cmd = [str(KB), "serve"]
    with ServerProcess(cmd, env, port, home / "serve.log", timeout=300) as srv:
        tokens = {"alice": mint(env, "alice", "eng"), "bob": mint(env, "bob", "hr")}
        served = Served(srv.url, env, srv.log_path, served_database, tokens, {})
        _drive_traffic(served)
        yield served


def _drive_traffic(s: Served) -> None:
    searches: list[tuple[str, dict[str, Any]]] = [
        ("search", {"query": "how are database backups restored"}),
        ("search", {"query": "deployment roll back", "mode": "keyword"}),
        ("search", {"query": "who answers pages", "mode": "semantic"}),
    ]
    s.request_ids["alice"] = f"test-alice-{uuid.uuid4().hex[:8]}"
    hits = anyio.run(mcp_calls, s.url, s.tokens["alice"], searches, s.request_ids["alice"])
    first = hits[0].structured_content["results"]
    assert first, "alice's search found nothing: the corpus did not sync"
    doc_id = first[0]["id"]
    # bob may read nothing: an empty search, and alice's document reads as missing.
    s.request_ids["bob"] = f"test-bob-{uuid.uuid4().hex[:8]}"
    bob = anyio.run(
        mcp_calls,
        s.url,
        s.tokens["bob"],
        [("search", {"query": "database backups"}), ("fetch", {"id": doc_id})],
        s.request_ids["bob"],
    )
    assert bob[0].structured_content["results"] == []
    assert bob[1].is_error
    # A tool name the server never registered: refused, and counted under "other".
    unknown: list[tuple[str, dict[str, Any]]] = [(f"nope_{uuid.uuid4().hex}", {})]
    with pytest.raises(ExceptionGroup) as refused:
        anyio.run(mcp_calls, s.url, s.tokens["alice"], unknown)
    assert "Unknown tool" in repr(refused.value)
