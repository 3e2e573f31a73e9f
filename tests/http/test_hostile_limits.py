"""Hostile HTTP input against a real server: bodies, slow clients, foreign hosts, bad ids.

Raw sockets where the point is what the server does *before* the client has sent
everything: a server that reads the body first would wait for bytes that never come.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.http.limits import BodyLimitMiddleware
from server.http.protocol import uvicorn_config
from server.settings import Settings
from tests.support.live_server import LiveServer, free_port

SMALL_LIMIT = 64 * 1024
IMPORT_LIMIT = 1024 * 1024


@dataclass
class Srv:
    url: str
    port: int
    admin: str  # bearer token of a bootstrap admin
    reader: str  # bearer token with kb.read


@contextmanager
def running(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    **http: object,
) -> Iterator[Srv]:
    port = free_port()
    settings = make_settings(
        http={
            "port": port,
            "max_request_bytes": SMALL_LIMIT,
            "max_import_bytes": IMPORT_LIMIT,
            **http,
        },
        auth={"mode": "dev", "admin_principals": ["user:root"]},
    )
    issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
    app = create_app(settings, target=db_target, embedder=embedder)
    # Served as `kb serve` serves (header deadline included).
    config = uvicorn_config(app, settings, log_level="warning")
    with LiveServer(app, config=config) as srv:
        yield Srv(
            srv.url,
            port,
            issuer.mint("root", scopes=["kb.admin"]),
            issuer.mint("alice", scopes=["kb.read"]),
        )


def raw_request(port: int, head: str, body: bytes = b"", *, wait: float = 5.0) -> bytes:
    """Send ``head`` and ``body`` (possibly far less than announced); return what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head.encode() + body)
        sock.settimeout(wait)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), f"no answer from the server: {reply!r}"
    return int(reply.split(b" ", 2)[1])


def test_unauthenticated_large_body_is_refused_before_it_is_read(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    """A 100 MB POST without credentials gets 401 after 64 KB: the rest is never awaited."""
    with running(make_settings, db_target, embedder) as srv:
        for path in ("/admin/policies/lint", "/admin/keys", "/admin/policies/import"):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
            )
            started = time.monotonic()
            reply = raw_request(srv.port, head, b"[" * 65536)
            assert status_of(reply) == 401, reply[:300]
            assert b"www-authenticate" in reply.lower()
            assert time.monotonic() - started < 4
        # Chunked (no Content-Length): the same answer, also before the body ends.
        head = (
            f"POST /admin/policies/lint HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        reply = raw_request(srv.port, head, b"10000\r\n" + b"[" * 65536 + b"\r\n")
        assert status_of(reply) == 401


def test_authenticated_oversized_body_gets_413(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    with running(make_settings, db_target, embedder) as srv:
        # Declared too large: refused at once, nothing read.
        head = (
            f"POST /admin/keys HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            f"Authorization: Bearer {srv.admin}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
        )
        assert status_of(raw_request(srv.port, head, b"{")) == 413
        # Streamed without a length: cut off once past the limit.
        big = b'{"name": "' + b"x" * (SMALL_LIMIT * 4) + b'"}'

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 8192):
                yield big[i : i + 8192]

        auth = {"Authorization": f"Bearer {srv.admin}", "Content-Type": "application/json"}
        r = httpx.post(f"{srv.url}/admin/keys", headers=auth, content=chunks())
        assert r.status_code == 413, r.text
        # /mcp is bounded by the same limit.
        mcp = {"Authorization": f"Bearer {srv.reader}", "Content-Type": "application/json"}
        r = httpx.post(f"{srv.url}/mcp", headers=mcp, content=chunks())
        assert r.status_code == 413
        # Policy imports have their own, larger limit: 200 KB passes the size check there
        # (and is judged on its content), but not on /admin/keys.
        policy = b"rules: []\n# " + b"y" * 200_000 + b"\n"
        yaml = {"Authorization": f"Bearer {srv.admin}", "Content-Type": "application/yaml"}
        r = httpx.post(f"{srv.url}/admin/policies/lint", headers=yaml, content=policy)
        assert r.status_code != 413, r.text
        r = httpx.post(f"{srv.url}/admin/keys", headers=yaml, content=policy)
        assert r.status_code == 413
        # Beyond the import limit: 413 there too.
        r = httpx.post(
            f"{srv.url}/admin/policies/lint", headers=yaml, content=b"#" * (IMPORT_LIMIT + 1)
        )
        assert r.status_code == 413
        # The server is still fine afterwards.
        assert httpx.get(f"{srv.url}/admin/keys", headers=auth).status_code == 200


def test_slow_body_gets_408(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    """A body sent a byte at a time is cut off at http.body_timeout_s, not held forever."""
    with running(make_settings, db_target, embedder, body_timeout_s=1.0) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(
                (
                    f"POST /admin/keys HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                    f"Authorization: Bearer {srv.admin}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                ).encode()
            )
            started = time.monotonic()
            sock.settimeout(0.3)
            reply = b""
            while time.monotonic() - started < 8 and not reply:
                try:
                    sock.sendall(b" ")
                    reply = sock.recv(65536)
                except TimeoutError:
                    continue
            assert status_of(reply) == 408, reply
            assert time.monotonic() - started < 4


def test_slow_headers_are_cut_off(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    """Headers trickled a byte at a time: the connection is closed at http.header_timeout_s."""
    with running(make_settings, db_target, embedder, header_timeout_s=1.0) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            started = time.monotonic()
            sock.settimeout(0.3)
            closed_after: float | None = None
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 60:
                try:
                    sock.sendall(bytes([byte]))
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                if not data or data.startswith(b"HTTP/1.1 408"):
                    closed_after = time.monotonic() - started
                    break
            assert closed_after is not None, "the server held a slow-header connection open"
            assert closed_after < 4


def test_foreign_host_and_origin_refused_on_every_route(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    with running(make_settings, db_target, embedder) as srv:
        admin = {"Authorization": f"Bearer {srv.admin}"}
        assert httpx.get(f"{srv.url}/admin/keys", headers=admin).status_code == 200
        evil = {**admin, "Host": "evil.com"}
        assert httpx.get(f"{srv.url}/admin/keys", headers=evil).status_code == 421
        assert httpx.get(f"{srv.url}/docs", headers=evil).status_code == 421
        assert httpx.get(f"{srv.url}/openapi.json", headers=evil).status_code == 421
        rebound = {**admin, "Origin": "http://evil.com"}
        assert httpx.get(f"{srv.url}/admin/keys", headers=rebound).status_code == 403
        same = {**admin, "Origin": f"http://127.0.0.1:{srv.port}"}
        assert httpx.get(f"{srv.url}/admin/keys", headers=same).status_code == 200
        # Probes stay reachable by pod IP.
        assert httpx.get(f"{srv.url}/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200


@pytest.mark.parametrize("bad_id", [{"a": 1}, [1], 1.5, True])
def test_jsonrpc_request_with_a_malformed_id_gets_invalid_request(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    bad_id: object,
) -> None:
    with running(make_settings, db_target, embedder) as srv:
        headers = {
            "Authorization": f"Bearer {srv.reader}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2025-11-25",
        }
        # Within an initialized session, where the SDK would take it for a notification.
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "hostile", "version": "0"},
            },
        }
        r = httpx.post(f"{srv.url}/mcp", headers=headers, json=init)
        assert r.status_code == 200, r.text
        session = r.headers.get("mcp-session-id")
        if session:
            headers["Mcp-Session-Id"] = session
        body = {"jsonrpc": "2.0", "id": bad_id, "method": "tools/list"}
        r = httpx.post(f"{srv.url}/mcp", headers=headers, json=body)
        assert r.status_code == 400, (r.status_code, r.text)
        assert r.json()["error"]["code"] == -32600
        assert r.json()["id"] is None


def test_searches_past_the_bound_get_503_and_health_does_not_wait(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    """http.max_concurrent_calls 1 and twelve searches at once: refusals are fast and clear."""
    with running(make_settings, db_target, embedder, max_concurrent_calls=1) as srv:
        headers = {
            "Authorization": f"Bearer {srv.reader}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": "search",
        }
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        barrier = threading.Barrier(12)

        def search(i: int) -> httpx.Response:
            body = {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {"name": "search", "arguments": {"query": f"q{i}"}, "_meta": meta},
            }
            barrier.wait()
            return httpx.post(f"{srv.url}/mcp", headers=headers, json=body, timeout=60)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(search, range(12)))
            health = httpx.get(f"{srv.url}/healthz", timeout=10)
        assert health.status_code == 200
        shed = [r for r in answers if r.status_code == 503]
        assert shed, [r.status_code for r in answers]
        for r in shed:
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == -32000
            assert "busy" in r.json()["error"]["message"]
        assert all(r.status_code in (200, 503) for r in answers)
        assert any(r.status_code == 200 for r in answers)


@pytest.mark.anyio
async def test_body_deadline_spares_requests_without_a_body() -> None:
    """An application reading late (an SSE stream, a slow handler) is not the client's fault."""

    async def late_reader(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(0.3)
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["type"].encode()})

    app = BodyLimitMiddleware(late_reader, max_bytes=10, import_max_bytes=10, body_timeout_s=0.1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/mcp")).status_code == 200
        # A body that already arrived is not the client's delay: the late read gets it.
        answer = await client.post("/mcp", content=b"12345")
        assert answer.status_code == 200 and answer.text == "http.request"
