"""The MCP endpoint over real HTTP (uvicorn in a thread), as two different callers.

alice (group:eng) and bob (group:hr) use development tokens minted by the dev issuer. Each
must see exactly their own documents in resources/list, search and list_sources, and a
document id guessed from the other caller must read exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager

import httpx
import psycopg
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import Corpus, Live

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def connected(live: Live, who: str, mode: str = "auto") -> AbstractAsyncContextManager[Client]:
    return live.client(who, mode=mode)


async def _all_resources(client: Client) -> list[str]:
    uris: list[str] = []
    cursor: str | None = None
    while True:
        page = await client.list_resources(cursor=cursor)
        uris += [str(r.uri) for r in page.resources]
        cursor = page.next_cursor
        if not cursor:
            return uris


def _doc_uri(corpus: Corpus, title: str) -> str:
    return f"kb://documents/{corpus.id(title)}"


@pytest.mark.anyio
async def test_two_callers_see_different_lists_searches_and_sources(
    live: Live, corpus: Corpus
) -> None:
    async with connected(live, "alice") as alice, connected(live, "bob", "legacy") as bob:
        a_uris = set(await _all_resources(alice))
        b_uris = set(await _all_resources(bob))
        assert a_uris == {
            "kb://sources/wiki",
            "kb://sources/finance",
            _doc_uri(corpus, "Deployment runbook"),
            _doc_uri(corpus, "Database backup policy"),
            _doc_uri(corpus, "Travel expenses"),
        }
        assert b_uris == {
            "kb://sources/hr",
            "kb://sources/finance",
            _doc_uri(corpus, "Salary review process"),
            _doc_uri(corpus, "Travel expenses"),
        }

        query = {"query": "when are salary reviews and deployments", "top_k": 10}
        a_hits = (await alice.call_tool("search", query)).structured_content
        b_hits = (await bob.call_tool("search", query)).structured_content
        assert a_hits is not None and b_hits is not None
        a_titles = {r["title"] for r in a_hits["results"]}
        b_titles = {r["title"] for r in b_hits["results"]}
        assert "Deployment runbook" in a_titles and "Salary review process" not in a_titles
        assert "Salary review process" in b_titles and "Deployment runbook" not in b_titles

        a_sources = (await alice.call_tool("list_sources", {})).structured_content
        b_sources = (await bob.call_tool("list_sources", {})).structured_content
        assert a_sources is not None and b_sources is not None
        assert {s["name"]: s["documents"] for s in a_sources["sources"]} == {
            "wiki": 2,
            "finance": 1,
        }
        assert {s["name"]: s["documents"] for s in b_sources["sources"]} == {
            "hr": 1,
            "finance": 1,
        }


@pytest.mark.anyio
async def test_guessed_ids_read_exactly_like_missing_ones(live: Live, corpus: Corpus) -> None:
    salary = corpus.id("Salary review process")
    missing = str(uuid.uuid4())
    async with connected(live, "alice") as alice:
        errors = []
        for ident in (salary, missing):
            with pytest.raises(MCPError) as caught:
                await alice.read_resource(f"kb://documents/{ident}")
            errors.append(caught.value.error.model_dump(exclude={"data"}))
            assert caught.value.error.data == {"uri": f"kb://documents/{ident}"}
        assert errors[0] == errors[1]
        assert errors[0]["code"] == -32602

        texts = []
        for ident in (salary, missing):
            result = await alice.call_tool("fetch", {"id": ident})
            assert result.is_error
            texts.append(result.content[0].text)  # type: ignore[union-attr]
        assert texts[0] == texts[1]
        assert "not found" in texts[0]

        # Bob reads the same document fine: it exists.
    async with connected(live, "bob") as bob:
        read = await bob.read_resource(f"kb://documents/{salary}")
        assert "April" in read.contents[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_calls_are_audited_with_the_callers_identity(live: Live, corpus: Corpus) -> None:
    async with connected(live, "alice") as alice:
        await alice.call_tool("search", {"query": "deployment"})
        await alice.call_tool("fetch", {"id": corpus.id("Salary review process")})
    with psycopg.connect(corpus.dsn) as conn:
        rows = conn.execute(
            "SELECT method, target, outcome, principals, transport FROM audit_log"
            " WHERE method = 'tools/call' ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("tools/call", "search", "ok"),
        ("tools/call", "fetch", "not_found"),
    ]
    assert all("user:alice" in r[3] and r[4] == "http" for r in rows)


def test_http_guards(live: Live) -> None:
    url = f"{live.url}/mcp"
    alice = {**ACCEPT, "Authorization": f"Bearer {live.tokens['alice']}"}
    with httpx.Client(timeout=30) as http:
        # No token: 401 pointing at the RFC 9728 metadata served at the host root.
        r = http.post(url, json=INIT, headers=ACCEPT)
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert "resource_metadata=" in challenge
        metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
        assert metadata_url == f"{live.url}/.well-known/oauth-protected-resource/mcp"
        meta = http.get(metadata_url).json()
        assert meta["resource"] == f"{live.url}/mcp"
        # A token without the required scope: 403.
        r = http.post(
            url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {live.tokens['noscope']}"}
        )
        assert r.status_code == 403
        # DNS rebinding: a foreign Host or Origin is refused.
        assert (
            http.post(url, json=INIT, headers={**alice, "Host": "evil.example"}).status_code == 421
        )
        r = http.post(url, json=INIT, headers={**alice, "Origin": "http://evil.example"})
        assert r.status_code == 403
        # Body over http.max_request_bytes (4096 here): 413.
        big = {**INIT, "params": {**INIT["params"], "pad": "x" * 5000}}
        assert http.post(url, json=big, headers=alice).status_code == 413
        # A good request works and CORS lets a browser read the session header.
        origin = "http://localhost:6274"
        r = http.post(url, json=INIT, headers={**alice, "Origin": origin})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        exposed = r.headers["access-control-expose-headers"].lower()
        assert "mcp-session-id" in exposed and "mcp-protocol-version" in exposed
        preflight = http.options(
            url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, mcp-protocol-version",
            },
        )
        assert preflight.status_code == 200
        assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"].lower()


@pytest.mark.anyio
async def test_cache_hints_mark_per_caller_lists_private(live: Live) -> None:
    async with connected(live, "alice") as alice:
        listed = await alice.list_resources()
        tools = await alice.list_tools()
    assert listed.cache_scope == "private"
    assert tools.cache_scope == "public"
    assert {t.name for t in tools.tools} == {"search", "fetch", "list_sources"}
