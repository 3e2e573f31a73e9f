"""Metrics of several processes: a shared PROMETHEUS_MULTIPROC_DIR sums them on /metrics'
exposition, and a process without the HTTP app (`kb worker`) serves its own port.

Real child processes (prometheus-client picks its storage when it is imported, so the
directory must be set before the process starts, as in production)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.errors import ConfigError
from server.observability.metrics import serve_process_metrics
from tests.observability.conftest import port_in_range
from tests.support.server_process import REPO

RECORD = (
    "from server.observability import metrics\n"
    "metrics.observe_mcp('tools/call', 'search', 'ok', 0.02)\n"
    "metrics.observe_embedding('document', 16, 0.5)\n"
)
EXPOSE = (
    "import sys\n"
    "from server.observability import metrics\n"
    "sys.stdout.buffer.write(metrics.exposition())\n"
)


def run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"{name} {labels} not exposed")


def test_a_shared_directory_sums_every_process(tmp_path: Path) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": str(REPO)}
    run(RECORD, env)  # say, a server process
    run(RECORD, env)  # and a worker on the same host
    text = run(EXPOSE, env)  # a third process answering /metrics
    count = "kb_mcp_request_duration_seconds_count"
    assert sample(text, count, method="tools/call", tool="search") == 2
    assert sample(text, "kb_embedder_texts_total", kind="document") == 32
    # Without the directory each process sees only itself.
    alone = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    fresh = run(EXPOSE, alone)
    assert not [
        s
        for f in text_string_to_metric_families(fresh)
        for s in f.samples
        if s.name == count and s.labels.get("tool") == "search"
    ]


def test_a_worker_serves_its_own_metrics_port(tmp_path: Path) -> None:
    port = port_in_range()
    code = RECORD + (
        f"metrics.serve_process_metrics({port}, '127.0.0.1')\nimport time\ntime.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.25)
        assert sample(text, "kb_embedder_texts_total", kind="document") == 16
        assert sample(text, "kb_embedder_batch_seconds_count", kind="document") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_taken_worker_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_process_metrics(port, "127.0.0.1")
