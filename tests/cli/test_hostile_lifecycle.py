"""`kb serve` and `kb worker` as an operator runs them: signals, a database killed with -9.

Each test runs the real command in a subprocess on its own embedded PostgreSQL (no
DATABASE_URL), because what is under test is what happens to that server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from server.db.embedded import running_postmaster_pid
from tests.support.live_server import free_port
from tests.support.server_process import KB, REPO, ServerProcess

pytestmark = pytest.mark.slow

UNAVAILABLE = "temporarily unavailable"


def embedded_env(home: Path, **extra: str) -> dict[str, str]:
    """kb on its own embedded server under ``home``: no DATABASE_URL, auth off, loopback."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "kb.yaml"
    config.write_text("{}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    env.update(
        KB_CONFIG=str(config),
        KB_HOME=str(home / "kb-home"),
        KB_AUTH__MODE="none",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def handles(pgdata: Path) -> list[int]:
    try:
        return list(json.loads((pgdata / ".handle_pids.json").read_text()))
    except (OSError, ValueError):
        return []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    port = free_port()
    env = embedded_env(tmp_path)
    cmd = [str(KB), "serve", "--port", str(port)]
    with ServerProcess(cmd, env, port, tmp_path / "serve.log") as srv:
        yield srv, tmp_path / "kb-home" / "pg"


def _initialize_body() -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "signals", "version": "0"},
            },
        }
    ).encode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_finishes_requests_and_stops_the_database(
    served: tuple[ServerProcess, Path], sig: signal.Signals
) -> None:
    srv, pgdata = served
    assert srv.proc is not None
    postmaster = running_postmaster_pid(pgdata)
    assert postmaster is not None and srv.proc.pid in handles(pgdata)
    body = _initialize_body()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        # A request in flight when the signal arrives: half its body sent.
        sock.sendall(
            (
                f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[:20]
        )
        time.sleep(0.5)
        srv.proc.send_signal(sig)
        time.sleep(1.0)
        sock.sendall(body[20:])
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert srv.proc.wait(timeout=60) == 0, srv.log()[-3000:]
    # The embedded server stopped with its last handle, and that handle is gone.
    deadline = time.monotonic() + 20
    while alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(postmaster), srv.log()[-3000:]
    assert srv.proc.pid not in handles(pgdata)
    assert "database handle released" in srv.log()


async def _search(url: str) -> tuple[bool, str]:
    async with create_mcp_http_client() as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, cache=None) as client:
            result = await client.call_tool("search", {"query": "anything"})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return bool(result.is_error), text


def search(url: str) -> tuple[bool, str]:
    return anyio.run(_search, url)


def test_database_killed_then_restarted_without_restarting_kb(
    served: tuple[ServerProcess, Path],
) -> None:
    srv, pgdata = served
    assert search(srv.url) == (False, search(srv.url)[1])
    postmaster = running_postmaster_pid(pgdata)
    assert postmaster is not None
    os.kill(postmaster, signal.SIGKILL)
    # While it is down: a clear "temporarily unavailable", not a bare "Error executing tool".
    failed, text = search(srv.url)
    assert failed and UNAVAILABLE in text, text
    # kb serve restarts the embedded server it owns; the pool reconnects on its own.
    deadline = time.monotonic() + 90
    recovered = False
    while time.monotonic() < deadline and not recovered:
        time.sleep(1)
        recovered = not search(srv.url)[0]
    assert recovered, srv.log()[-4000:]
    new_postmaster = running_postmaster_pid(pgdata)
    assert new_postmaster is not None and new_postmaster != postmaster
    assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 200
    assert srv.proc is not None and srv.proc.poll() is None


def test_worker_reconnects_after_the_database_is_killed(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    log_path = tmp_path / "worker.log"
    upgrade = subprocess.run(
        [str(KB), "db", "upgrade"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [str(KB), "worker"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
    pgdata = tmp_path / "kb-home" / "pg"
    try:
        deadline = time.monotonic() + 120
        while "worker kb-worker@" not in log_path.read_text(errors="replace"):
            assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.5)
        postmaster = running_postmaster_pid(pgdata)
        assert postmaster is not None
        os.kill(postmaster, signal.SIGKILL)
        # It notices, restarts the server it holds, reconnects and runs again: either its
        # loop rebuilds the worker ("reconnecting", a second start), or, when the server
        # was back before procrastinate noticed, procrastinate's pool reconnects on its own
        # and the worker runs a job (the periodic recovery, once a minute) after the restart.
        deadline = time.monotonic() + 150
        while True:
            text = log_path.read_text(errors="replace")
            restart = text.find("the embedded PostgreSQL was restarted")
            rebuilt = "reconnecting" in text and text.count("worker kb-worker@") >= 2
            ran_after = restart >= 0 and "ended with status: Success" in text[restart:]
            if restart >= 0 and (rebuilt or ran_after):
                break
            assert worker.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.5)
        new_postmaster = running_postmaster_pid(pgdata)
        assert new_postmaster is not None and new_postmaster != postmaster
        # Still alive well past the point where it used to exit (about 30 s).
        time.sleep(5)
        assert worker.poll() is None
        # And it still stops cleanly on SIGTERM, releasing its handle.
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) in (0, 1), log_path.read_text(errors="replace")[-3000:]
        assert worker.pid not in handles(pgdata)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if sys.platform != "win32":
            leftover = running_postmaster_pid(pgdata)
            if leftover is not None:
                os.kill(leftover, signal.SIGTERM)
