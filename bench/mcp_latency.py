"""MCP search latency: the full Streamable HTTP path against the search service called directly.

``python -m bench mcp_latency [--clients 1,16] [--rounds 3] [--no-write]``

The sample company (examples/kb.yaml: the shared drive and the SQLite database) is ingested
into a scratch embedded Postgres. Then the same questions are asked two ways, at each
concurrency in ``--clients``, as the same engineer (dev token, group:eng):

* **direct**: ``PolicyEngine.filter_for`` + ``SearchService.search`` in this process;
* **MCP over HTTP**: ``kb serve`` in its own process; each client is an official MCP SDK
  client (2026-07-28, no caching) calling the ``search`` tool over Streamable HTTP with a
  bearer token, so the time covers HTTP, authentication, JSON-RPC, the audit write and
  the client's own parsing.

p50/p95 per call and the ratio of the two p50s go to docs/benchmarks.md
("## MCP search latency"). Both runs share the machine's cores with the client code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx

from bench._kbdata import ROOT, markdown_table, scratch_database, write_section

QUESTIONS = [
    "How do we release a new firmware version?",
    "What does the on-call engineer do when the fleet manager is down?",
    "parental leave",
    "What caused the traffic deadlock in Rotterdam?",
    "Tern T2 payload and battery life",
    "warranty period for robots",
    "How is the Fleet Manager architected?",
    "navigation roadmap for 2026",
    "onboarding checklist for new employees",
    "Heron P3 picking arm press release",
    "firmware test matrix",
    "support ticket about a robot stuck at a charging station",
    "What is the company's expense policy?",
    "release process approvals",
    "postmortem action items",
    "Who do I contact for support?",
]
CALLER = ("user:erin", "group:eng")
HEADING = "MCP search latency"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


async def run_clients(
    clients: int, rounds: int, call: Callable[[int, str], Awaitable[None]]
) -> tuple[list[float], float]:
    """``clients`` workers, each asking every question ``rounds`` times (offset per worker)."""
    latencies: list[float] = []

    async def worker(i: int) -> None:
        for r in range(rounds):
            for j in range(len(QUESTIONS)):
                question = QUESTIONS[(i + j + r) % len(QUESTIONS)]
                started = time.perf_counter()
                await call(i, question)
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return latencies, time.perf_counter() - started


def settings_for(database_url: str, home: Path, port: int) -> dict[str, str]:
    """kb's environment: the sample configuration on the scratch database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(
        KB_CONFIG=str(ROOT / "examples" / "kb.yaml"),
        KB_DATABASE__URL=database_url,
        KB_HOME=str(home),
        KB_HTTP__PORT=str(port),
        KB_INGEST__SYNC_ON_START="never",
        KB_LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
    )
    return env


Runs = dict[int, tuple[list[float], float]]


Call = Callable[[int, str], Awaitable[None]]


@asynccontextmanager
async def direct_calls() -> AsyncIterator[Call]:
    """The search service in this process, as the benchmark caller."""
    from core.identity import Caller
    from server.mcp.state import McpState
    from server.runtime import open_runtime
    from server.search.schemas import SearchQuery
    from server.settings import load_settings

    caller = Caller.of(*CALLER, transport="internal")
    async with open_runtime(load_settings()) as runtime:
        state = McpState.of_runtime(runtime)

        async def call(_: int, question: str) -> None:
            access = runtime.policies.filter_for(caller)
            result = await state.search.search(access, SearchQuery(text=question, top_k=10))
            assert result.hits, question

        yield call


@asynccontextmanager
async def mcp_calls(url: str, token: str, clients: int) -> AsyncIterator[Call]:
    """``clients`` MCP sessions over Streamable HTTP; worker ``i`` uses session ``i``."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with AsyncExitStack() as stack:
        sessions: list[Client] = []
        for _ in range(clients):
            http = await stack.enter_async_context(
                create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
            )
            transport = streamable_http_client(url, http_client=http)
            sessions.append(await stack.enter_async_context(Client(transport, cache=None)))

        async def call(i: int, question: str) -> None:
            result = await sessions[i].call_tool("search", {"query": question, "top_k": 10})
            assert not result.is_error and result.structured_content, result.content

        yield call


async def measure(url: str, token: str, levels: list[int], rounds: int) -> dict[str, Runs]:
    """Both paths, interleaved round by round so they see the same background load."""
    runs: dict[str, Runs] = {"direct": {}, "mcp": {}}
    async with direct_calls() as direct, mcp_calls(url, token, max(levels)) as over_mcp:
        paths = {"direct": direct, "mcp": over_mcp}
        for call in paths.values():  # warm-up: caches, plans, first model calls
            await run_clients(max(levels), 1, call)
        for _ in range(rounds):
            for n in levels:
                for name, call in paths.items():
                    latencies, wall = await run_clients(n, 1, call)
                    before, seconds = runs[name].get(n, ([], 0.0))
                    runs[name][n] = (before + latencies, seconds + wall)
    return runs


def mint_token(env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("kb")), "token", "mint", "--sub", "erin", "-g", "eng"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    kb = str(Path(sys.executable).with_name("kb"))
    with log.open("wb") as out:
        proc = subprocess.Popen([kb, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kb serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise TimeoutError("kb serve did not become ready")


def row(name: str, clients: int, latencies: list[float], wall: float) -> list[object]:
    return [
        name,
        clients,
        len(latencies),
        f"{statistics.median(latencies):.1f}",
        f"{percentile(latencies, 0.95):.1f}",
        f"{len(latencies) / wall:.1f}",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mcp_latency", description=__doc__)
    parser.add_argument(
        "--clients", default="1,16", help="concurrency levels, comma-separated (default 1,16)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args(argv)
    levels = sorted({int(n) for n in args.clients.split(",")})

    from server.cli.bootstrap import sync_never_synced
    from server.db.engine import DatabaseTarget, to_sqlalchemy_url
    from server.settings import load_settings

    with scratch_database("mcp_latency") as uri, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = settings_for(uri, Path(tmp) / "home", port)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("KB_", "HF_"))})
        settings = load_settings()
        print("ingesting the sample company ...", flush=True)
        target = DatabaseTarget(to_sqlalchemy_url(uri))
        sync_never_synced(settings, target)

        print("starting kb serve ...", flush=True)
        proc = serve(env, port, Path(tmp) / "serve.log")
        try:
            token = mint_token(env)
            print(f"measuring at {levels} concurrent clients ...", flush=True)
            runs = asyncio.run(measure(f"http://127.0.0.1:{port}/mcp", token, levels, args.rounds))
            direct, over_mcp = runs["direct"], runs["mcp"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    rows: list[list[object]] = []
    ratios: dict[int, float] = {}
    for n in levels:
        rows.append(row("search service, direct", n, *direct[n]))
        rows.append(row("`search` tool, MCP over HTTP", n, *over_mcp[n]))
        ratios[n] = statistics.median(over_mcp[n][0]) / statistics.median(direct[n][0])
    table = markdown_table(
        ["path", "concurrent clients", "calls", "p50 ms", "p95 ms", "calls/s"], rows
    )
    top = max(levels)
    overhead = ", ".join(f"**{ratios[n]:.2f}x** at {n}" for n in levels)
    body = f"""`python -m bench mcp_latency` ({", ".join(map(str, levels))} concurrent clients, \
{len(QUESTIONS)} questions x {args.rounds} rounds each after one warm-up round, the two \
paths alternating round by round; {platform.machine()}, {os.cpu_count()} cores shared by \
server, clients and other work).

Data: the sample company (`examples/kb.yaml`: its shared drive and SQLite database), asked
as an engineer (`user:erin`, `group:eng`) through the real policy. **Direct** is
`PolicyEngine.filter_for` + `SearchService.search` in one process. **MCP over HTTP** is
`kb serve` in its own process and one official MCP SDK client per worker (protocol
2026-07-28, client cache off) calling the `search` tool with a dev bearer token: HTTP,
token verification, JSON-RPC, the access filter, the search, the audit row and the client's
parsing.

{table}

Protocol overhead (MCP p50 / direct p50): {overhead} concurrent clients.
One client at a time shows the extra work per call (HTTP, token check, JSON-RPC, argument and result
validation on both ends, the audit insert). With {top} clients on {os.cpu_count()} cores
every call mostly waits for the CPU, and the MCP side also runs the {top} SDK clients on
those cores, so that ratio measures CPU per call under saturation, not the network.
"""
    print(body)
    if not args.no_write:
        write_section(HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
