"""Three ``kb serve`` replicas on one database behind a real nginx, driven through it.

nginx round-robins (no stickiness), so consecutive requests of one client land on different
replicas; ``X-Kb-Upstream`` (test config only) names the replica of each answer. Proven:

* 2026-07-28 requests are answered by every replica;
* a 2025-11-25 client (initialize handshake) keeps working across replicas because the
  replicas run with ``mcp.stateless_http`` (no session to lose; docs/scaling.md says why);
* bearer tokens and API keys work on every replica, and an API key revoked through one
  replica is refused by all; a token from an unknown key is refused by all;
* a policy revocation made through the admin API of one replica is enforced by every
  replica (polled until each has stopped returning the document, then checked to stay so).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from server.embeddings.base import Embedder
from server.settings import Settings
from tests.ingest.helpers import sync, sync_engine
from tests.scale.topology import (
    ADMIN,
    Answered,
    Issuer,
    Nginx,
    Replicas,
    admin_call,
    hit_ids,
    make_example_cert,
    mcp_client,
    post_mcp,
    render_deploy_conf,
    replica_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

BALANCER_PORT = 18600
REPLICA_PORTS = (18601, 18602, 18603)
TLS_PORT = 18604
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
QUERY = "Project Heron launch plan"
NOTES = {
    "heron.md": "# Project Heron launch plan\n\nProject Heron launches the picking arm in "
    "March. The launch plan lists the press date, the demo robots and the sales training.",
    "expenses.md": "# Travel expenses\n\nTrain tickets are refunded in second class; hotels "
    "up to the city limit; receipts go to finance within thirty days.",
    "oncall.md": "# On-call handbook\n\nThe on-call engineer answers pages within fifteen "
    "minutes and writes the incident summary the next working day.",
}


@dataclass
class Topology:
    url: str
    nginx: Nginx
    replicas: Replicas
    issuer: Issuer
    heron: str  # document id of the note the revocation hides

    def token(self, sub: str, scope: str = "kb.read") -> str:
        return self.issuer.token(sub, scope)

    @property
    def admin(self) -> str:
        return self.token(ADMIN, "kb.read kb.admin")


@pytest.fixture(scope="module")
def topology(
    module_database: str, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    root = tmp_path_factory.mktemp("replicas")
    notes = root / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text + "\n", encoding="utf-8")
    url = f"http://127.0.0.1:{BALANCER_PORT}"
    issuer = Issuer(root / "jwks.json", audience=f"{url}/mcp")
    sources = [{"name": "handbook", "kind": "files", "root": str(notes)}]
    config = replica_config(module_database, url, issuer, sources, root / "home")
    # The corpus, synced once in this process with the session's model.
    settings = Settings(**config)
    with sync_engine(settings) as engine:
        assert sync(settings, engine, embedder, "handbook").status == "succeeded"
    with (
        Replicas(root / "replicas", config, REPLICA_PORTS) as replicas,
        Nginx(root / "nginx", BALANCER_PORT, REPLICA_PORTS) as nginx,
    ):
        topo = Topology(url, nginx, replicas, issuer, heron="")
        topo.heron = asyncio.run(_grant_and_find(topo))
        yield topo


async def _grant_and_find(topo: Topology) -> str:
    """Let alice and the reporter key read the handbook; the Heron note's id."""
    for subject in ("user:alice", "svc:reporter"):
        rule = {"subject": subject, "object": "source:handbook"}
        await admin_call(topo.url, topo.admin, "POST", "/admin/policies/rules", rule)
    async with mcp_client(topo.url, topo.token("alice"), "2026-07-28") as (client, _):
        result = await client.call_tool("search", {"query": QUERY, "top_k": 3})
        content = result.structured_content or {}
        top = content["results"][0]
        assert top["title"] == "Project Heron launch plan", content
        return str(top["id"])


async def _cover(client: Any, seen: Answered, every: set[str]) -> list[list[str]]:
    """Search until every replica has answered a search; the hits of each search.

    The SDK may send other requests between calls (``tools/list``), so the searches could
    keep landing on the same replica: after each search answered by a replica already seen,
    one extra ``tools/list`` shifts the round-robin phase.
    """
    found: list[list[str]] = []
    covered: set[str] = set()
    for _ in range(10 * len(every)):
        mark = len(seen.calls)
        found.append(hit_ids(await client.call_tool("search", {"query": QUERY})))
        new = seen.since(mark)
        if new <= covered:
            await client.list_tools()
        covered |= new
        if covered == every:
            return found
    raise AssertionError(f"searches reached only {covered}")


async def _search_rounds(
    url: str, credential: str, mode: str, every: set[str]
) -> tuple[list[list[str]], Answered]:
    """One client's searches through the balancer until every replica answered one."""
    async with mcp_client(url, credential, mode) as (client, answered):
        found = await _cover(client, answered, every)
        sources = await client.call_tool("list_sources", {})
        assert not sources.is_error, sources.content
        return found, answered


async def test_2026_requests_are_answered_by_every_replica(topology: Topology) -> None:
    every = set(topology.replicas.upstreams)
    found, answered = await _search_rounds(
        topology.url, topology.token("alice"), "2026-07-28", every
    )
    assert answered.since(0) == every
    assert all(topology.heron in ids and len(ids) == len(NOTES) for ids in found)
    # Wrong caller: bob has no rule, and every replica shows him nothing.
    found, answered = await _search_rounds(topology.url, topology.token("bob"), "2026-07-28", every)
    assert answered.since(0) == every
    assert found == [[]] * len(found)


async def test_2025_session_keeps_working_across_replicas(topology: Topology) -> None:
    every = set(topology.replicas.upstreams)
    # The handshake itself: stateless replicas hand out no session id to lose.
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "scale-test", "version": "1"},
        },
    }
    answer = await post_mcp(topology.url, topology.token("alice"), init)
    assert answer.status_code == 200, answer.text
    assert "mcp-session-id" not in answer.headers
    # One legacy client: initialized by one replica, its calls answered by every replica.
    found, answered = await _search_rounds(topology.url, topology.token("alice"), "legacy", every)
    assert len(answered.since(0, "initialize")) == 1
    assert answered.since(0) == every
    assert all(topology.heron in ids for ids in found)


async def test_tokens_and_api_keys_are_valid_on_every_replica(topology: Topology) -> None:
    created, via = await admin_call(
        topology.url, topology.admin, "POST", "/admin/keys", {"name": "reporter"}
    )
    assert via in topology.replicas.upstreams
    key = created["secret"]
    every = set(topology.replicas.upstreams)
    found, answered = await _search_rounds(topology.url, key, "2026-07-28", every)
    assert answered.since(0) == set(topology.replicas.upstreams)
    assert all(topology.heron in ids for ids in found)

    # Revoked through one replica: refused by every replica from then on.
    await admin_call(topology.url, topology.admin, "DELETE", f"/admin/keys/{created['key']['id']}")
    forged = topology.issuer.token("alice", key=rsa.generate_private_key(65537, 2048))
    for credential in (key, forged):
        refused: set[str] = set()
        for _ in range(3 * len(REPLICA_PORTS)):
            response = await post_mcp(topology.url, credential, TOOLS_LIST)
            assert response.status_code == 401, response.text
            refused.add(response.headers["x-kb-upstream"])
        assert refused == set(topology.replicas.upstreams)


async def test_revocation_through_one_replica_reaches_every_replica(topology: Topology) -> None:
    deny = {"subject": "user:alice", "object": f"doc:{topology.heron}", "effect": "deny"}
    async with mcp_client(topology.url, topology.token("alice"), "2026-07-28") as (client, seen):
        before = hit_ids(await client.call_tool("search", {"query": QUERY}))
        assert topology.heron in before
        _, via = await admin_call(
            topology.url, topology.admin, "POST", "/admin/policies/rules", deny
        )
        assert via in topology.replicas.upstreams
        # Each replica must stop returning the note (LISTEN/NOTIFY; the poll is a fallback).
        clean: set[str] = set()
        deadline = time.monotonic() + 60
        while clean != set(topology.replicas.upstreams):
            assert time.monotonic() < deadline, f"not yet clean everywhere: {clean}"
            mark = len(seen.calls)
            ids = hit_ids(await client.call_tool("search", {"query": QUERY}))
            if topology.heron in ids:
                continue
            if seen.since(mark) <= clean:
                await client.list_tools()  # shift the round-robin phase
            clean |= seen.since(mark)
        # ... and never again: twice more over every replica.
        for _ in range(2):
            for ids in await _cover(client, seen, set(topology.replicas.upstreams)):
                assert topology.heron not in ids and len(ids) == len(NOTES) - 1
    # Undo, through the balancer again, for the other tests of the module.
    listed, _ = await admin_call(topology.url, topology.admin, "GET", "/admin/policies")
    rule = next(i for i in listed["items"] if i.get("effect") == "deny")
    await admin_call(topology.url, topology.admin, "DELETE", f"/admin/policies/{rule['id']}")


async def test_console_session_sticks_to_the_replica_that_signed_the_admin_in(
    topology: Topology,
) -> None:
    """The console keeps its sign-in session in one replica's memory, so the balancer pins
    console pages to a replica per client address (ip_hash), while MCP stays round-robin."""
    async with httpx.AsyncClient(base_url=topology.url, timeout=120) as http:
        form = await http.get("/admin/ui/signin")
        assert form.status_code == 200
        pre = re.search(r'name="pre" value="([^"]+)"', form.text)
        assert pre is not None
        signed = await http.post(
            "/admin/ui/signin",
            data={"pre": pre[1], "token": topology.admin, "next": "/admin/ui/"},
        )
        assert signed.status_code == 303, signed.text
        assert http.cookies.get("kb_console", path="/admin/ui")
        served = {signed.headers["x-kb-upstream"]}
        for _ in range(2 * len(REPLICA_PORTS)):
            page = await http.get("/admin/ui/sources")
            # Round-robin would land on a replica without the session: a sign-in redirect.
            assert page.status_code == 200, (page.status_code, page.headers.get("location"))
            assert "handbook" in page.text
            served.add(page.headers["x-kb-upstream"])
        assert len(served) == 1, served
        # Without a session the console refuses, whichever replica answers.
        http.cookies.clear()
        anonymous = await http.get("/admin/ui/sources")
        assert anonymous.status_code in (302, 303, 307), anonymous.status_code


async def test_tls_balancer_from_the_deployment_config(
    topology: Topology, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """deploy/nginx/kb.conf itself (TLS, the example certificate) in front of the replicas."""
    import ssl

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    root = tmp_path_factory.mktemp("tls")
    certs = make_example_cert(root / "certs")
    conf = render_deploy_conf(
        root / "nginx", https_port=TLS_PORT, http_port=TLS_PORT + 1,
        upstreams=REPLICA_PORTS, certs=certs,
    )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(certs / "kb.crt"))
    headers = {"Authorization": f"Bearer {topology.token('alice')}"}
    with Nginx(root / "nginx", TLS_PORT, REPLICA_PORTS, conf=conf):
        async with httpx2.AsyncClient(verify=trust, headers=headers, timeout=60) as http:
            transport = streamable_http_client(
                f"https://localhost:{TLS_PORT}/mcp", http_client=http
            )
            async with Client(transport, mode="2026-07-28", cache=None) as client:
                ids = hit_ids(await client.call_tool("search", {"query": QUERY}))
            assert topology.heron in ids
            # Plain HTTP only redirects to HTTPS: a token is never answered in clear text.
            plain = await http.post(f"http://127.0.0.1:{TLS_PORT + 1}/mcp", json=TOOLS_LIST)
            assert plain.status_code == 308
            assert plain.headers["location"].startswith("https://")
        # An untrusting client refuses the self-signed certificate.
        async with httpx2.AsyncClient(timeout=30) as untrusting:
            with pytest.raises(httpx2.ConnectError):
                await untrusting.get(f"https://localhost:{TLS_PORT}/healthz")
