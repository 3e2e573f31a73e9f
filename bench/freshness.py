"""Freshness: how long a change at a watched source takes to reach search, through MCP.

``python -m bench freshness [--docs 200] [--trials 10] [--rows 10000] [--sql-trials 5]
[--interval 2] [--no-write]``

A scratch embedded Postgres, one ``kb worker`` (which runs the watchers) and one ``kb serve``
(real HTTP, dev tokens). Two watched sources:

* **files**: a folder of ``--docs`` documents whose sidecar shares them with ``group:eng``
  and ``group:sales``. Each trial tightens the sidecar to ``group:eng`` alone and times,
  from the write, until an MCP ``search`` as a ``group:sales`` user returns none of them;
  then loosens it again and times until they are back. Embeddings computed during the
  trial (chunks written by every run in it) must be 0.
* **sql**: a MariaDB table of ``--rows`` rows (real server on 127.0.0.1:3306), watched with
  a ``--interval`` second poll. ACL trials move the ``team`` column of 100 rows (one
  "block", which shares a keyword) to a team the caller is not in, and time until a keyword
  search for the block returns none of them; text trials change 10 rows and time until a
  search finds all 10; delete trials delete 5 rows and time until none is found.

Times include the search round-trips (each poll is one MCP call); the machine is shared.
Results: a table printed and written to docs/benchmarks.md ("## Freshness").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymysql
import yaml

from bench._kbdata import markdown_table, scratch_database, write_section

HEADING = "Freshness"
KB = str(Path(sys.executable).with_name("kb"))
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
TEAMS = ("support", "billing", "network")
POLICIES = {
    "roles": {f"group:{g}": "role:staff" for g in ("eng", "sales", *TEAMS)},
    "rules": [
        {"subject": "role:staff", "object": "acl:source", "comment": "what the source shares"}
    ],
}
TIMEOUT_S = 120.0  # a trial that takes longer is recorded as failed (inf)


def free_port() -> int:
    from tests.support.live_server import free_port_in

    return free_port_in(range(18300, 18400))


# --------------------------------------------------------------------------- sources


def write_folder(root: Path, docs: int) -> Path:
    team = root / "team"
    team.mkdir(parents=True)
    for i in range(docs):
        (team / f"report{i:03d}.md").write_text(
            f"# Quarterly heron report {i}\n\nThe heron programme quarterly report number {i} "
            f"covers wing inspections, nest counts and budget line {i * 13}."
        )
    sidecar = team / ".kb-acl.yaml"
    sidecar.write_text("acl: [group:eng, group:sales]\n")
    return sidecar


def mariadb(database: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(**MARIADB, database=database, autocommit=True)  # type: ignore[arg-type]


def create_table(database: str, rows: int) -> None:
    with mariadb() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
    with mariadb(database) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE tickets (id INT PRIMARY KEY, subject VARCHAR(200) NOT NULL, "
            "body TEXT NOT NULL, team VARCHAR(50) NOT NULL, updated_at DATETIME(6) NOT NULL)"
        )
        values = [
            (
                i,
                f"Ticket {i}",
                f"Forklift {i % 89} reports fault code F{i % 17} in aisle {i % 31}; "
                f"block code blk{(i - 1) // 100}q, case word cw{i}z.",
                TEAMS[i % 3],
                i,
            )
            for i in range(1, rows + 1)
        ]
        for start in range(0, len(values), 2000):
            cur.executemany(
                "INSERT INTO tickets VALUES (%s, %s, %s, %s, "
                "TIMESTAMPADD(SECOND, %s, '2024-01-01 00:00:00'))",
                values[start : start + 2000],
            )


def sql_exec(database: str, statement: str) -> None:
    with mariadb(database) as conn, conn.cursor() as cur:
        cur.execute(statement)


# --------------------------------------------------------------------------- the KB


def kb_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    env.update(KB_CONFIG=str(config), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def write_config(
    work: Path, dsn: str, folder: Path, database: str | None, interval: float, port: int
) -> Path:
    sources: list[dict[str, Any]] = [
        {
            "name": "share",
            "kind": "files",
            "root": str(folder),
            "acl": ["group:eng"],
            "watch": True,
            "watch_debounce_ms": 50,
        }
    ]
    if database is not None:
        sources.append(
            {
                "name": "tickets",
                "kind": "sql",
                "url": f"mysql+pymysql://root@127.0.0.1:3306/{database}",
                "watch": True,
                "watch_interval_seconds": interval,
                "tables": [
                    {
                        "table": "tickets",
                        "primary_key": "id",
                        "text_template": "{subject}\n{body}",
                        "title_column": "subject",
                        "updated_at": "updated_at",
                        "acl_columns": "team",
                        "lookback_seconds": 60,
                    }
                ],
            }
        )
    (work / "policies.yaml").write_text(yaml.safe_dump(POLICIES))
    config = work / "kb.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(work / "home"),
                "database": {"url": dsn},
                "auth": {"mode": "dev"},
                "policy_file": "policies.yaml",
                "log_level": "WARNING",
                "http": {"port": port},
                "sources": sources,
            }
        )
    )
    return config


def live_count(dsn: str, source: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM documents WHERE source = %s AND deleted_at IS NULL", (source,)
        ).fetchone()
    return int(row[0]) if row else 0


def work_done(dsn: str) -> tuple[int, int]:
    """(chunks embedded, authorization-only updates) by every run so far."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(chunks_written), 0), coalesce(sum(acl_updated), 0) "
            "FROM ingest_runs"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_until(check: Any, what: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kb worker exited while waiting for {what}")
        if check():
            return
        time.sleep(1.0)
    raise TimeoutError(f"timed out waiting for {what}")


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([KB, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def mint(env: dict[str, str], sub: str, groups: list[str]) -> str:
    cmd = [KB, "token", "mint", "--sub", sub]
    for g in groups:
        cmd += ["-g", g]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------- MCP


class Searcher:
    """One MCP session (Streamable HTTP, bearer token) calling the ``search`` tool."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def results(self, query: str, *, mode: str | None = None) -> list[dict[str, Any]]:
        arguments: dict[str, Any] = {"query": query, "top_k": 50}
        if mode is not None:
            arguments["mode"] = mode
        result = await self.client.call_tool("search", arguments)
        assert not result.is_error, result.content
        return list((result.structured_content or {}).get("results", []))


@asynccontextmanager
async def searcher(url: str, token: str) -> AsyncIterator[Searcher]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        )
        transport = streamable_http_client(url, http_client=http)
        yield Searcher(await stack.enter_async_context(Client(transport, cache=None)))


async def time_until(check: Any, started: float) -> float:
    """Seconds from ``started`` until ``await check()`` is true (inf after TIMEOUT_S)."""
    while time.perf_counter() - started < TIMEOUT_S:
        if await check():
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    return float("inf")


# --------------------------------------------------------------------------- trials


async def files_trials(
    s: Searcher, dsn: str, sidecar: Path, trials: int
) -> tuple[list[float], list[float], list[int], list[int]]:
    query = "quarterly heron report"

    async def team_hits() -> int:
        return sum(1 for r in await s.results(query) if "/team/" in r["url"])

    tighten, loosen, embedded, reauthorized = [], [], [], []
    for _ in range(trials):
        if await team_hits() == 0:
            raise RuntimeError("group:sales sees none of the folder before the trial")
        chunks0, acl0 = await asyncio.to_thread(work_done, dsn)
        started = time.perf_counter()
        await asyncio.to_thread(sidecar.write_text, "acl: [group:eng]\n")
        tighten.append(await time_until(lambda: _none(team_hits), started))
        started = time.perf_counter()
        await asyncio.to_thread(sidecar.write_text, "acl: [group:eng, group:sales]\n")
        loosen.append(await time_until(lambda: _some(team_hits), started))
        await asyncio.sleep(1.0)  # the run's counters commit with its last batch
        chunks1, acl1 = await asyncio.to_thread(work_done, dsn)
        embedded.append(chunks1 - chunks0)
        reauthorized.append(acl1 - acl0)
    return tighten, loosen, embedded, reauthorized


async def _none(count: Any) -> bool:
    return int(await count()) == 0


async def _some(count: Any) -> bool:
    return int(await count()) > 0


async def sql_trials(
    s: Searcher, dsn: str, database: str, trials: int, rows: int
) -> dict[str, tuple[list[float], list[int]]]:
    out: dict[str, tuple[list[float], list[int]]] = {
        "acl": ([], []),
        "text": ([], []),
        "delete": ([], []),
    }
    blocks = rows // 100
    for t in range(trials):
        block = t % blocks

        async def block_hits(block: int = block) -> int:
            hits = await s.results(f"blk{block}q", mode="keyword")
            return sum(1 for r in hits if r["title"].startswith("Ticket "))

        if await block_hits() == 0:
            raise RuntimeError(f"block {block} is not visible before the trial")
        chunks0, _ = await asyncio.to_thread(work_done, dsn)
        started = time.perf_counter()
        await asyncio.to_thread(
            sql_exec,
            database,
            f"UPDATE tickets SET team = 'restricted', updated_at = NOW(6) "
            f"WHERE id BETWEEN {block * 100 + 1} AND {block * 100 + 100}",
        )
        out["acl"][0].append(await time_until(lambda: _none(block_hits), started))
        await asyncio.sleep(1.0)
        out["acl"][1].append((await asyncio.to_thread(work_done, dsn))[0] - chunks0)

        # Text: 10 rows of another block gain a new word.
        word = f"zq{uuid.uuid4().hex[:6]}w"
        ids = [((blocks - 1 - t) % blocks) * 100 + 1 + j * 7 for j in range(10)]
        chunks0, _ = await asyncio.to_thread(work_done, dsn)

        async def text_hits(word: str = word) -> int:
            return len(await s.results(word, mode="keyword"))

        started = time.perf_counter()
        await asyncio.to_thread(
            sql_exec,
            database,
            f"UPDATE tickets SET body = CONCAT(body, ' Also {word}.'), updated_at = NOW(6) "
            f"WHERE id IN ({', '.join(map(str, ids))})",
        )
        out["text"][0].append(await time_until(lambda: _count_is(text_hits, 10), started))
        await asyncio.sleep(1.0)
        out["text"][1].append((await asyncio.to_thread(work_done, dsn))[0] - chunks0)

        # Delete: 5 rows (found by their own words) disappear.
        gone = [ids[j] + 3 for j in range(5)]
        words = " ".join(f"cw{i}z" for i in gone)

        async def gone_hits(words: str = words, gone: list[int] = gone) -> int:
            titles = {r["title"] for r in await s.results(words, mode="keyword")}
            return sum(1 for i in gone if f"Ticket {i}" in titles)

        if await gone_hits() != 5:
            raise RuntimeError("the rows to delete are not all visible before the trial")
        chunks0, _ = await asyncio.to_thread(work_done, dsn)
        started = time.perf_counter()
        await asyncio.to_thread(
            sql_exec, database, f"DELETE FROM tickets WHERE id IN ({', '.join(map(str, gone))})"
        )
        out["delete"][0].append(await time_until(lambda: _none(gone_hits), started))
        await asyncio.sleep(1.0)
        out["delete"][1].append((await asyncio.to_thread(work_done, dsn))[0] - chunks0)
    return out


async def _count_is(count: Any, n: int) -> bool:
    return int(await count()) >= n


# --------------------------------------------------------------------------- report


def row(name: str, times: list[float], embedded: list[int], target: str) -> list[object]:
    finite = [t for t in times if t != float("inf")]
    median = statistics.median(times) if times else float("nan")
    worst = max(times) if times else float("nan")
    return [
        name,
        len(times),
        f"{median:.2f}",
        f"{worst:.2f}" if worst != float("inf") else f"> {TIMEOUT_S:.0f} (timeout)",
        f"{len(finite)}/{len(times)}",
        f"{sum(embedded)} ({', '.join(map(str, sorted(set(embedded))))} per trial)",
        target,
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench freshness", description=__doc__)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--sql-trials", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--no-sql", action="store_true", help="Only the files part.")
    parser.add_argument("--no-write", action="store_true", help="Do not touch docs/benchmarks.md.")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="kb-bench-freshness-"))
    database = None if args.no_sql else f"kbfresh_{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with scratch_database("freshness") as dsn:
            sidecar = write_folder(work / "share", args.docs)
            if database is not None:
                print(f"creating {args.rows} rows in MariaDB {database} ...", flush=True)
                create_table(database, args.rows)
            port = free_port()
            config = write_config(work, dsn, work / "share", database, args.interval, port)
            env = kb_env(config)
            started = time.perf_counter()
            worker = start(["worker"], env, work / "worker.log")
            procs.append(worker)
            print("kb worker: initial ingestion by the watchers ...", flush=True)
            wait_until(lambda: live_count(dsn, "share") == args.docs, "the folder", 900, worker)
            if database is not None:
                wait_until(
                    lambda: live_count(dsn, "tickets") == args.rows, "the table", 3600, worker
                )
            print(f"  ingested in {time.perf_counter() - started:.0f} s", flush=True)
            serve = start(["serve"], env, work / "serve.log")
            procs.append(serve)
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((work / "serve.log").read_text()[-3000:])
                time.sleep(0.5)
            url = f"http://127.0.0.1:{port}/mcp"
            sales = mint(env, "sam", ["sales"])
            teams = mint(env, "tess", list(TEAMS))

            async def run() -> tuple[Any, Any]:
                async with searcher(url, sales) as s:
                    files = await files_trials(s, dsn, sidecar, args.trials)
                sql = None
                if database is not None:
                    async with searcher(url, teams) as s:
                        sql = await sql_trials(s, dsn, database, args.sql_trials, args.rows)
                return files, sql

            files, sql = asyncio.run(run())
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        if database is not None:
            with suppress(pymysql.MySQLError):
                sql_exec("mysql", f"DROP DATABASE IF EXISTS `{database}`")
        shutil.rmtree(work, ignore_errors=True)

    tighten, loosen, embedded, reauthorized = files
    header = ["change", "trials", "median s", "max s", "done", "chunks embedded", "target"]
    rows = [
        row(
            f"files: sidecar tightened on {args.docs} docs (hidden from group)",
            tighten,
            embedded,
            "max <= 5 s, 0 embeddings",
        ),
        row("files: sidecar loosened again (visible)", loosen, embedded, "-"),
    ]
    if sql is not None:
        bound = f"max <= {args.interval + 3:g} s"
        rows += [
            row(
                f"sql: acl column of 100 of {args.rows} rows", *sql["acl"], f"{bound}, 0 embeddings"
            ),
            row("sql: text of 10 rows (searchable)", *sql["text"], bound),
            row("sql: 5 rows deleted (gone)", *sql["delete"], bound),
        ]
    table = markdown_table(header, rows)
    print(table)
    per_trial = sorted(set(reauthorized))
    print(f"authorization-only updates per files trial (tighten + loosen): {per_trial}")
    if not args.no_write:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        note = (
            f"`python -m bench freshness` on {platform.machine()} with {os.cpu_count()} cores, "
            f"the machine shared with other work (load average {load} at the end; "
            "times are wall clock and include each poll's "
            "MCP round-trip). One `kb worker` runs the watchers, `kb serve` answers MCP `search` "
            "over HTTP with dev tokens. Files: watch mode (inotify through watchfiles, 50 ms "
            f"debounce); SQL: MariaDB, watch mode polled every {args.interval:g} s (count, key "
            "checksum and highest updated_at; the deletion scan only when count or checksum "
            "move). 'chunks embedded' sums the chunks written by every run during the trials: "
            "an authorization-only change writes none (its documents and chunks are updated in "
            f"place; {sorted(set(reauthorized))} documents per files trial)."
        )
        write_section(HEADING, note + "\n\n" + table)
    return 0
