"""`kb serve --workers N`: several processes on one port, supervised by the parent.

Real processes on their own embedded PostgreSQL (the parent owns it; the workers must
never start or stop it), a real MCP client, real signals.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.db.embedded import running_postmaster_pid
from tests.cli.test_hostile_lifecycle import alive, embedded_env, handles, search
from tests.support.live_server import free_port
from tests.support.server_process import KB, REPO, ServerProcess

pytestmark = pytest.mark.slow

ALL_READY = "2 worker processes"
CONNECTIONS = 24


def spawned_workers(parent: int) -> list[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    out = []
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return []
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            out.append(child)
    return out


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def connections_held(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` whose socket is open in process ``pid``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                held += 1
    return held


def searches_on_new_connections(url: str, count: int) -> list[httpx.Client]:
    """``count`` searches, each on its own new connection, left open (the caller closes)."""
    clients = [httpx.Client(timeout=60) for _ in range(count)]
    for i, client in enumerate(clients):
        answer = client.post(f"{url}/mcp", headers=MCP_HEADERS, json=search_call(i))
        assert answer.status_code == 200, answer.text[:300]
        assert '"result"' in answer.text and '"isError":true' not in answer.text.replace(" ", "")
    return clients


MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "search",
}


def search_call(request_id: int) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "search",
            "arguments": {"query": f"quarterly report {request_id}"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }


def held_by(workers: list[int], url: str, port: int, count: int) -> dict[int, int]:
    """Searches on ``count`` new connections; how many of them each worker holds."""
    clients = searches_on_new_connections(url, count)
    try:
        return {w: connections_held(w, port) for w in workers}
    finally:
        for client in clients:
            client.close()


def search_counts(url: str) -> float:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in body.splitlines():
        if line.startswith("kb_mcp_requests_total{") and 'tool="search"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_workers_share_the_port_are_replaced_and_stop_with_the_parent(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(tmp_path, KB_MCP__STATELESS_HTTP="true")
    cmd = [str(KB), "serve", "--workers", "2", "--port", str(port)]
    pgdata = tmp_path / "kb-home" / "pg"
    with ServerProcess(cmd, env, port, tmp_path / "serve.log") as srv:
        assert srv.proc is not None
        parent = srv.proc.pid
        wait_for(lambda: ALL_READY in srv.log(), "both workers ready")
        first, second = spawned_workers(parent)
        # Only the parent holds the embedded server; the workers never registered.
        assert handles(pgdata) == [parent]

        # The kernel spreads connections over both workers, and each answers its share.
        # (24 connections all hashed to one worker: a chance of 2 in 2**24.)
        held = held_by([first, second], srv.url, port, CONNECTIONS)
        assert sum(held.values()) == CONNECTIONS and min(held.values()) > 0, held
        # /metrics sums the workers: every search counted, whichever process answered.
        assert search_counts(srv.url) == CONNECTIONS
        # A plain MCP client (2025-11-25 handshake, stateless) is answered too.
        failed, text = search(srv.url)
        assert not failed, text

        # A worker killed while serving is replaced; the replacement serves its share.
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: len([w for w in spawned_workers(parent) if w != first]) == 2,
            "a replacement worker",
        )
        assert "exited with code -9 while serving; starting a new one" in srv.log()
        (replacement,) = [w for w in spawned_workers(parent) if w not in (first, second)]
        # Searches succeed all along (while the replacement loads, its socket does not
        # listen: tests/http/test_listen.py), until the replacement takes its share.
        deadline = time.monotonic() + 120
        while True:
            held = held_by([second, replacement], srv.url, port, CONNECTIONS)
            assert held[second] + held[replacement] == CONNECTIONS, held
            if held[replacement] > 0:
                break
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(1)

        # SIGTERM to the parent stops every worker, then the embedded server.
        postmaster = running_postmaster_pid(pgdata)
        assert postmaster is not None
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=90) == 0, srv.log()[-3000:]
        for worker in (second, replacement):
            assert not alive(worker)
        wait_for(lambda: not alive(postmaster), "the embedded server stopped", timeout=30)
        assert "database handle released" in srv.log()
        # The shared metrics directory was this run's and is gone.
        assert not list((tmp_path / "kb-home").glob("metrics-*"))


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(tmp_path, KB_MCP__STATELESS_HTTP="true")
    cmd = [str(KB), "serve", "--workers", "2", "--port", str(port)]
    with ServerProcess(cmd, env, port, tmp_path / "serve.log") as srv:
        assert srv.proc is not None
        wait_for(lambda: ALL_READY in srv.log(), "both workers ready")
        workers = spawned_workers(srv.proc.pid)
        assert len(workers) == 2
        srv.proc.kill()  # SIGKILL: the parent cannot pass anything on
        srv.proc.wait(timeout=10)
        # Orphaned, each notices within its watch interval and shuts itself down.
        wait_for(lambda: not any(alive(w) for w in workers), "orphaned workers stop", 30)
        assert "kb serve parent" in srv.log() and "is gone; stopping" in srv.log()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{srv.url}/healthz", timeout=5)
    # The embedded server outlived its killed owner: stop it (nothing of this test is left).
    leftover = running_postmaster_pid(tmp_path / "kb-home" / "pg")
    if leftover is not None:
        os.kill(leftover, signal.SIGTERM)


def _kb_serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KB), "serve", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_several_workers_need_stateless_mcp(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    done = _kb_serve(env, "--workers", "2", "--port", str(free_port()))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "mcp.stateless_http" in done.stdout + done.stderr
    # Refused before anything started: no embedded server was created.
    assert not (tmp_path / "kb-home" / "pg").exists()


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = embedded_env(tmp_path, KB_MCP__STATELESS_HTTP="true")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _kb_serve(env, "--workers", "2", "--port", str(port))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr
    assert not (tmp_path / "kb-home" / "pg").exists()


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    # The parent does not load the model (nothing to sync first); the workers do, and fail.
    env = embedded_env(
        tmp_path,
        KB_MCP__STATELESS_HTTP="true",
        KB_EMBEDDING__MODEL=str(tmp_path / "no-such-model"),
        KB_INGEST__SYNC_ON_START="never",
    )
    done = _kb_serve(env, "--workers", "2", "--port", str(free_port()))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "before it was ready" in out, out[-3000:]
    pgdata = tmp_path / "kb-home" / "pg"
    assert running_postmaster_pid(pgdata) is None
    assert handles(pgdata) == []
    assert not list((tmp_path / "kb-home").glob("metrics-*"))
