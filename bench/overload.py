"""Overload: 200 concurrent MCP clients for 30 s against a real ``kb serve``.

``python -m bench overload [--clients 200] [--seconds 30] [--slow 300] [--no-write]``

The sample company (examples/kb.yaml) is ingested into a scratch embedded Postgres and
``kb serve`` runs in its own process with its default settings. Then, at the same time:

* ``--clients`` workers each call the ``search`` tool in a loop for ``--seconds`` (raw
  Streamable HTTP POSTs of the stateless 2026-07-28 protocol with a dev bearer token, so
  the load generator stays cheap); a 503 is honoured as its ``Retry-After`` asks (with
  jitter), as a well-behaved client would;
* a prober in its own process GETs ``/healthz`` every 100 ms (a new connection each time);
* ``--slow`` hostile connections trickle bytes: half send request headers a byte at a time,
  half send headers and then a body a byte at a time (slowloris).

Reported: searches per second, outcomes by kind, p50/p95 of successful and of refused
calls, ``/healthz`` p50/p95/max, how the slow connections ended, and the server's RSS
before, at its peak and after. Targets (issue 9): ``/healthz`` p95 under 100 ms, RSS growth
under 200 MB. Written to docs/benchmarks.md ("## Overload").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

from bench._kbdata import markdown_table, percentile, scratch_database, write_section
from bench.mcp_latency import QUESTIONS, free_port, mint_token, serve, settings_for

HEADING = "Overload"
VERSION = "2026-07-28"


@dataclass
class Results:
    outcomes: Counter[str] = field(default_factory=Counter)
    ok_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    health_failures: int = 0
    slow: Counter[str] = field(default_factory=Counter)
    rss_mb: list[float] = field(default_factory=list)


def search_request(i: int, question: str) -> tuple[dict[str, str], dict[str, Any]]:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "search",
    }
    body = {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {
            "name": "search",
            "arguments": {"query": question, "top_k": 10},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "bench-overload", "version": "1"},
            },
        },
    }
    return headers, body


def classify(response: httpx.Response) -> str:
    if response.status_code == 503:
        return "503 shed"
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    text = response.text
    if '"isError":true' in text.replace(" ", ""):
        return "tool error"
    if '"error"' in text and '"result"' not in text:
        return "JSON-RPC error"
    return "ok"


async def client(
    i: int, url: str, token: str, http: httpx.AsyncClient, until: float, out: Results
) -> None:
    n = 0
    while time.monotonic() < until:
        question = QUESTIONS[(i + n) % len(QUESTIONS)]
        headers, body = search_request(i * 100_000 + n, question)
        headers["Authorization"] = f"Bearer {token}"
        n += 1
        started = time.perf_counter()
        try:
            response = await http.post(url, headers=headers, json=body)
        except httpx.TimeoutException:
            out.outcomes["client timeout (30 s)"] += 1
            continue
        except httpx.HTTPError as exc:
            out.outcomes[f"connection error ({exc.__class__.__name__})"] += 1
            await asyncio.sleep(0.5)
            continue
        elapsed = (time.perf_counter() - started) * 1000
        kind = classify(response)
        out.outcomes[kind] += 1
        if kind == "ok":
            out.ok_ms.append(elapsed)
        elif kind == "503 shed":
            out.refused_ms.append(elapsed)
            retry = float(response.headers.get("retry-after", "1"))
            await asyncio.sleep(retry * random.uniform(0.5, 1.5))


def probe(base: str, seconds: float) -> None:
    """GET /healthz every 100 ms for ``seconds``; print the latencies (ms, -1 = failed) as JSON.

    Runs in its own process (see :func:`start_prober`): a prober sharing the load
    generator's event loop would time that loop's backlog, not the server.
    """
    import http.client
    import json
    from urllib.parse import urlsplit

    netloc = urlsplit(base).netloc
    latencies: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(netloc, timeout=10)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            ok = False
        latencies.append((time.perf_counter() - started) * 1000 if ok else -1.0)
        time.sleep(0.1)
    print(json.dumps(latencies))


def start_prober(base: str, seconds: float) -> subprocess.Popen[str]:
    code = f"from bench.overload import probe; probe({base!r}, {seconds!r})"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def collect_prober(proc: subprocess.Popen[str], out: Results) -> None:
    import json

    stdout, _ = proc.communicate(timeout=120)
    for value in json.loads(stdout):
        if value < 0:
            out.health_failures += 1
        else:
            out.health_ms.append(value)


async def slow_connection(port: int, token: str, i: int, until: float, out: Results) -> None:
    """Trickle a request one byte every 0.5 s; record whether and how the server ended it."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        out.slow["refused at connect"] += 1
        return
    if i % 2:
        # The headers at once (with a valid token), then the body a byte at a time.
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100000\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\r\n"
        )
        writer.write(head.encode())
        payload = b" " * 100_000
        kind = "slow body"
    else:
        payload = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Pad: ".encode()
        payload += b"a" * 100_000
        kind = "slow headers"
    started = time.monotonic()
    try:
        for byte in payload:
            if time.monotonic() > until:
                out.slow[f"{kind}: still open at the end"] += 1
                return
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(200), timeout=0.5)
            except TimeoutError:
                continue
            status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else ""
            label = f"answered {status}" if status else "closed"
            out.slow[f"{kind}: {label} after {time.monotonic() - started:.0f} s"] += 1
            return
    except (ConnectionError, OSError):
        out.slow[f"{kind}: closed after {time.monotonic() - started:.0f} s"] += 1
    finally:
        writer.close()


async def rss_sampler(proc: psutil.Process, until: float, out: Results) -> None:
    while time.monotonic() < until:
        out.rss_mb.append(proc.memory_info().rss / 2**20)
        await asyncio.sleep(0.25)


async def run_load(
    port: int, token: str, clients: int, seconds: float, slow: int, proc: psutil.Process
) -> Results:
    out = Results()
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        prober = start_prober(base, seconds)
        until = time.monotonic() + seconds
        tasks = [asyncio.create_task(rss_sampler(proc, until + 1, out))]
        tasks += [
            asyncio.create_task(slow_connection(port, token, i, until, out)) for i in range(slow)
        ]
        tasks += [
            asyncio.create_task(client(i, f"{base}/mcp", token, http, until, out))
            for i in range(clients)
        ]
        await asyncio.gather(*tasks)
    await asyncio.to_thread(collect_prober, prober, out)
    return out


def fmt(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "-"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench overload", description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--slow", type=int, default=300, help="slowloris connections")
    parser.add_argument(
        "--max-calls", type=int, default=None, help="http.max_concurrent_calls (default: kb's)"
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args(argv)

    from server.cli.bootstrap import sync_never_synced
    from server.db.engine import DatabaseTarget, to_sqlalchemy_url
    from server.settings import load_settings

    with scratch_database("overload") as uri, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = settings_for(uri, Path(tmp) / "home", port)
        if args.max_calls:
            env["KB_HTTP__MAX_CONCURRENT_CALLS"] = str(args.max_calls)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("KB_", "HF_"))})
        settings = load_settings()
        print("ingesting the sample company ...", flush=True)
        sync_never_synced(settings, DatabaseTarget(to_sqlalchemy_url(uri)))
        print("starting kb serve ...", flush=True)
        server = serve(env, port, Path(tmp) / "serve.log")
        try:
            token = mint_token(env)
            proc = psutil.Process(server.pid)
            # Warm-up: a few searches so the model, caches and pool are in their steady state.
            asyncio.run(run_load(port, token, 4, 3.0, 0, proc))
            rss_before = proc.memory_info().rss / 2**20
            print(
                f"{args.clients} clients and {args.slow} slow connections "
                f"for {args.seconds:.0f} s ...",
                flush=True,
            )
            load_before = os.getloadavg()[0]
            started = time.monotonic()
            out = asyncio.run(run_load(port, token, args.clients, args.seconds, args.slow, proc))
            wall = time.monotonic() - started
            load_after = os.getloadavg()[0]
            time.sleep(5)
            rss_after = proc.memory_info().rss / 2**20
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=60)

    total = sum(out.outcomes.values())
    peak = max([rss_before, *out.rss_mb])
    health_p95 = percentile(out.health_ms, 0.95) if out.health_ms else float("inf")
    outcome_rows = [[kind, count] for kind, count in out.outcomes.most_common()]
    slow_rows = [[kind, count] for kind, count in sorted(out.slow.items())]
    summary = markdown_table(
        ["measure", "value"],
        [
            ["searches answered (ok) per second", f"{len(out.ok_ms) / wall:.1f}"],
            ["requests sent", total],
            ["ok: p50 / p95 ms", f"{fmt(out.ok_ms, 0.5)} / {fmt(out.ok_ms, 0.95)}"],
            ["503 shed: p50 / p95 ms", f"{fmt(out.refused_ms, 0.5)} / {fmt(out.refused_ms, 0.95)}"],
            [
                "/healthz: p50 / p95 / max ms",
                f"{fmt(out.health_ms, 0.5)} / {fmt(out.health_ms, 0.95)} / "
                f"{max(out.health_ms, default=0):.0f}",
            ],
            ["/healthz failures", out.health_failures],
            [
                "server RSS before / peak / after (MB)",
                f"{rss_before:.0f} / {peak:.0f} / {rss_after:.0f}",
            ],
            ["server alive afterwards", "yes" if alive else "NO"],
        ],
    )
    verdict = (
        f"/healthz p95 {health_p95:.0f} ms (target < 100): "
        f"{'met' if health_p95 < 100 else 'NOT met'}; RSS growth {peak - rss_before:.0f} MB "
        f"(target < 200): {'met' if peak - rss_before < 200 else 'NOT met'}."
    )
    body = f"""`python -m bench overload` ({args.clients} clients, {args.seconds:.0f} s, \
{args.slow} slow connections; {platform.machine()}, {os.cpu_count()} cores shared by the \
server, the load generator and other work: load average {load_before:.1f} before the run, \
{load_after:.1f} after).

`kb serve` (`http.max_concurrent_calls` \
{args.max_calls or settings.http.max_concurrent_calls}, `http.header_timeout_s` \
{settings.http.header_timeout_s:g}, `http.body_timeout_s` {settings.http.body_timeout_s:g}, the \
rest default) on \
the sample company. Each client calls the `search` tool (stateless 2026-07-28 POSTs, dev \
bearer token) in a loop and honours `Retry-After` on 503, with jitter; a prober in its own \
process GETs `/healthz` every 100 ms on a new connection; the slow connections send one \
byte every 0.5 s (half of them their request headers; half their headers at once, then a \
100 kB body).

{summary}

Outcomes:

{markdown_table(["outcome", "requests"], outcome_rows)}

Slow connections:

{markdown_table(["how it ended", "connections"], slow_rows or [["(none)", 0]])}

{verdict} Before these limits (issue 9), the same load gave 8.6 requests/s, p50 11.7 s and
p95 22 s for searches, `/healthz` up to 8.5 s, and slow connections were held for 30 s.
"""
    print(body)
    if not args.no_write:
        write_section(HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
