"""Scale-out on one machine: replicas behind nginx, and workers on one queue.

``python -m bench replicas [--trials 20] [--replicas 3] [--seconds 15] [--no-write]
[--skip-workers] [--skip-replicas] [--skip-sizing]``

1. **Revocation through the balancer.** ``--replicas`` ``kb serve`` processes on one
   scratch database behind nginx (round-robin, the deployment's locations file), as in
   tests/scale/. Each trial adds a deny rule for one document through the admin API (so one
   replica makes the change), then searches as the affected user through the balancer
   until the document is gone, and measures: the first answer without it, the moment every
   replica has answered without it, and (polled directly, in parallel) the moment every
   replica's ``/readyz`` reports the new policy version. The rule is then removed and the
   document must come back on every replica before the next trial.
2. **Search throughput through the balancer**: closed-loop MCP clients for ``--seconds``.
3. **Worker throughput**: the same folder corpus (several sources, since runs of one source
   never overlap) synced by 1 and by 2 ``kb worker`` processes, each on a fresh database;
   from the first enqueue to the last run's end. Workers start (and load the model) first.
4. **HNSW index size**: ``pg_relation_size`` of the chunk table's HNSW index (m=16,
   ef_construction=64, 384 dimensions) and of the whole table on ``--sizing-chunks`` chunks.

Everything writes the "## Scale-out" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import psycopg
import yaml

from bench._kbdata import ROOT, BulkDoc, bulk_load, markdown_table, scratch_database, write_section

HEADING = "Scale-out"
T = TypeVar("T")
BALANCER_PORT = 18610
QUERY = "Project Heron launch plan"
NOTES = {
    "heron.md": "# Project Heron launch plan\n\nProject Heron launches the picking arm in "
    "March. The launch plan lists the press date, the demo robots and the sales training.",
    "expenses.md": "# Travel expenses\n\nTrain tickets are refunded in second class; hotels "
    "up to the city limit; receipts go to finance within thirty days.",
    "oncall.md": "# On-call handbook\n\nThe on-call engineer answers pages within fifteen "
    "minutes and writes the incident summary the next working day.",
}
PARAGRAPH = (
    "The {topic} group reviews every request within two working days. Escalations go to the "
    "duty manager of {topic}, who decides within one day and records the outcome in the "
    "ledger together with the reasons, the people consulted and the follow-up date. "
)


def _ms(values: list[float]) -> tuple[str, str]:
    return f"{statistics.median(values) * 1000:.0f}", f"{max(values) * 1000:.0f}"


# --------------------------------------------------------------------------- replicas
@dataclass
class Trial:
    ack: float  # the admin call returned
    first_clean: float  # first search through the balancer without the document
    all_clean: float  # every replica has answered without it
    all_versions: float  # every replica's /readyz shows the new policy version


READYZ_MS: list[float] = []  # how long each /readyz poll took (the snapshot row's resolution)


async def _versions_reached(ports: list[int], version: int, t0: float) -> float:
    async with httpx.AsyncClient(timeout=10) as http:

        async def one(port: int) -> float:
            while True:
                asked = time.perf_counter()
                answer = await http.get(f"http://127.0.0.1:{port}/readyz")
                READYZ_MS.append((time.perf_counter() - asked) * 1000)
                if answer.json()["policy"]["version"] >= version:
                    return time.perf_counter() - t0
                await asyncio.sleep(0.002)

        return max(await asyncio.gather(*(one(p) for p in ports)))


async def _replica_runs(topo: Any, trials: int, seconds: float) -> tuple[list[Trial], Any]:
    from tests.scale.topology import admin_call, hit_ids, mcp_client

    url, alice, admin = topo["url"], topo["alice"], topo["admin"]
    every = set(topo["upstreams"])
    for rule in (
        {"subject": "user:alice", "object": "source:handbook"},
        {"subject": "user:bob", "object": "source:handbook"},
    ):
        await admin_call(url, admin, "POST", "/admin/policies/rules", rule)
    results: list[Trial] = []
    async with mcp_client(url, alice, "2026-07-28") as (client, seen):

        async def search() -> tuple[list[str], set[str]]:
            mark = len(seen.upstreams)
            ids = hit_ids(await client.call_tool("search", {"query": QUERY, "top_k": 5}))
            return ids, seen.since(mark)

        ids, _ = await search()
        heron = ids[0]
        deny = {"subject": "user:alice", "object": f"doc:{heron}", "effect": "deny"}
        for _ in range(trials):
            t0 = time.perf_counter()
            change, _ = await admin_call(url, admin, "POST", "/admin/policies/rules", deny)
            ack = time.perf_counter() - t0
            versions = asyncio.create_task(_versions_reached(topo["ports"], change["version"], t0))
            clean: set[str] = set()
            first = 0.0
            while clean != every:
                ids, by = await search()
                if heron not in ids:
                    first = first or time.perf_counter() - t0
                    if by <= clean:
                        await client.list_tools()  # shift the round-robin phase
                    clean |= by
                if time.perf_counter() - t0 > 120:
                    raise RuntimeError("the revocation did not reach every replica in 120 s")
            results.append(Trial(ack, first, time.perf_counter() - t0, await versions))
            listed, _ = await admin_call(url, admin, "GET", "/admin/policies")
            rule = next(i for i in listed["items"] if i.get("effect") == "deny")
            await admin_call(url, admin, "DELETE", f"/admin/policies/{rule['id']}")
            back: set[str] = set()
            while back != every:  # the document is readable again everywhere
                ids, by = await search()
                if heron in ids:
                    if by <= back:
                        await client.list_tools()
                    back |= by
    throughput = await _search_throughput(url, topo["bob"], seconds)
    return results, throughput


async def _search_throughput(url: str, token: str, seconds: float) -> tuple[int, int, float]:
    """(clients, searches, searches/s) of closed-loop MCP clients through the balancer."""
    from tests.scale.topology import hit_ids, mcp_client

    clients = 8
    done = 0
    questions = ["launch plan", "travel expenses refund", "on-call pages", "Project Heron"]

    async def loop(i: int) -> None:
        nonlocal done
        async with mcp_client(url, token, "2026-07-28") as (client, _):
            deadline = time.perf_counter() + seconds
            j = i
            while time.perf_counter() < deadline:
                q = questions[j % len(questions)]
                assert hit_ids(await client.call_tool("search", {"query": q, "top_k": 5}))
                done += 1
                j += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    return clients, done, done / (time.perf_counter() - started)


def run_replicas(count: int, trials: int, seconds: float) -> tuple[list[Trial], Any]:
    from server.ingest.service import run_sync
    from server.settings import Settings
    from tests.scale.topology import ADMIN, Issuer, Nginx, Replicas, replica_config

    embedder = _embedder()
    with scratch_database("replicas") as uri, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes = root / "notes"
        notes.mkdir()
        for name, text in NOTES.items():
            (notes / name).write_text(text + "\n", encoding="utf-8")
        url = f"http://127.0.0.1:{BALANCER_PORT}"
        issuer = Issuer(root / "jwks.json", audience=f"{url}/mcp")
        sources = [{"name": "handbook", "kind": "files", "root": str(notes)}]
        config = replica_config(uri, url, issuer, sources, root / "home")
        settings = Settings(**config)
        engine = _engine(settings)
        try:
            run_sync(settings, engine, embedder, "handbook")
        finally:
            engine.dispose()
        ports = [BALANCER_PORT + 1 + i for i in range(count)]
        print(f"starting {count} replicas and nginx ...", flush=True)
        with (
            Replicas(root / "replicas", config, ports) as replicas,
            Nginx(root / "nginx", BALANCER_PORT, ports),
        ):
            topo = {
                "url": url,
                "ports": ports,
                "upstreams": replicas.upstreams,
                "alice": issuer.token("alice"),
                "bob": issuer.token("bob"),
                "admin": issuer.token(ADMIN, "kb.read kb.admin"),
            }
            print(f"{trials} revocation trials ...", flush=True)
            return asyncio.run(_replica_runs(topo, trials, seconds))


def _embedder() -> Any:
    from server.embeddings import load_embedder
    from server.settings import EmbeddingSettings

    return load_embedder(EmbeddingSettings())


def _engine(settings: Any) -> Any:
    from server.db.engine import DatabaseTarget, make_sync_engine, to_sqlalchemy_url

    url = settings.database.url.get_secret_value()
    return make_sync_engine(DatabaseTarget(to_sqlalchemy_url(url)), settings)


# --------------------------------------------------------------------------- workers
@dataclass
class WorkerRun:
    workers: int
    threads: str
    docs: int
    chunks: int
    seconds: float


def _write_corpus(root: Path, sources: int, docs: int) -> list[dict[str, Any]]:
    out = []
    for s in range(sources):
        folder = root / f"team-{s}"
        folder.mkdir(parents=True)
        for d in range(docs):
            body = "\n\n".join(PARAGRAPH.format(topic=f"t{s}-{d}-{p}") * 2 for p in range(3))
            (folder / f"note-{d:03d}.md").write_text(f"# Note {s}-{d}\n\n{body}\n")
        out.append({"name": f"team-{s}", "kind": "files", "root": str(folder)})
    return out


def run_workers(count: int, threads: int | None, sources: list[dict[str, Any]]) -> WorkerRun:
    from sqlalchemy import text

    from server.jobs.enqueue import enqueue_sync
    from server.settings import Settings

    kb = str(Path(sys.executable).with_name("kb"))
    with scratch_database(f"workers{count}") as uri, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config: dict[str, Any] = {
            "home": str(root / "home"),
            "log_level": "INFO",
            "database": {"url": uri},
            "sources": sources,
        }
        if threads:
            config["embedding"] = {"threads": threads}
        (root / "kb.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
        env.update(KB_CONFIG=str(root / "kb.yaml"), HF_HUB_OFFLINE="1")
        logs = [root / f"worker-{i}.log" for i in range(count)]
        procs = []
        for log in logs:
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen([kb, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        try:
            # Ready once each has logged its start (after loading the model).
            deadline = time.monotonic() + 300
            while not all("scheduled sources" in log.read_text(errors="replace") for log in logs):
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError(logs[0].read_text()[-3000:])
                if time.monotonic() > deadline:
                    raise TimeoutError("the workers did not log their start in 300 s")
                time.sleep(0.2)
            settings = Settings(**config)
            engine = _engine(settings)
            target = _target(uri)
            started = time.time()
            for source in sources:
                enqueue_sync(settings, target, engine, source["name"])
            while True:
                with engine.connect() as conn:
                    row = conn.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE status NOT IN ('succeeded','failed')),"
                            " count(*) FILTER (WHERE status = 'failed'),"
                            " sum(docs_added), sum(chunks_written),"
                            " extract(epoch FROM max(finished_at)) FROM ingest_runs"
                        )
                    ).one()
                if row[0] == 0:
                    break
                time.sleep(0.2)
            engine.dispose()
            if row[1]:
                raise RuntimeError(f"{row[1]} runs failed")
            return WorkerRun(
                count, str(threads or "all"), int(row[2]), int(row[3]), float(row[4]) - started
            )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)


def _target(uri: str) -> Any:
    from server.db.engine import DatabaseTarget, to_sqlalchemy_url

    return DatabaseTarget(to_sqlalchemy_url(uri))


# --------------------------------------------------------------------------- sizing
def hnsw_sizing(chunks: int) -> dict[str, float]:
    """Sizes on ``chunks`` random unit vectors (an HNSW graph's size does not depend on the
    values): index, table with TOAST, and every index of the chunk table."""
    rng = np.random.default_rng(7)
    docs = []
    per_doc = 10
    text = "x" * 800  # about a 200-token chunk of plain text
    for _ in range(chunks // per_doc):
        vectors = rng.standard_normal((per_doc, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        docs.append(BulkDoc(uuid.uuid4(), "doc", ["group:all"], "c", [text] * per_doc, vectors))
    with scratch_database("sizing") as uri:
        build_s = bulk_load(uri, docs)
        with psycopg.connect(uri) as conn:
            one = conn.execute(
                "SELECT pg_relation_size('ix_chunks_embedding_hnsw'),"
                " pg_table_size('chunks'), pg_indexes_size('chunks'), count(*) FROM chunks"
            ).fetchone()
    assert one is not None
    index, table, indexes, n = (float(v) for v in one)
    return {"chunks": n, "index": index, "table": table, "indexes": indexes, "build_s": build_s}


# --------------------------------------------------------------------------- report
KEPT = ROOT / "bench" / "out" / "replicas"  # raw results of the last run (git-ignored)
REUSE = False


def _kept(part: str, measure: Callable[[], T]) -> T:
    """Measure, or with ``--reuse`` take the last run's raw result (to re-render the text)."""
    path = KEPT / f"{part}.pickle"
    if REUSE and path.exists():
        value: T = pickle.loads(path.read_bytes())
        return value
    value = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench replicas", description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="search throughput run")
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--docs", type=int, default=60, help="notes per source")
    parser.add_argument("--sizing-chunks", type=int, default=50_000)
    parser.add_argument("--skip-replicas", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-sizing", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    parser.add_argument(
        "--reuse", action="store_true", help="re-render the last run's results (bench/out/)"
    )
    args = parser.parse_args(argv)
    global REUSE
    REUSE = args.reuse
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    cores = os.cpu_count()
    parts = [
        f"`python -m bench replicas` ({platform.machine()}, {cores} cores shared by every "
        "process below and by other work: the machine was loaded, so read ratios, not "
        "absolutes). Real processes: `kb serve` replicas on one embedded PostgreSQL 18 + "
        "pgvector 0.8 behind nginx 1.22 (round-robin, `deploy/nginx/kb-locations.conf`), "
        "`kb worker` processes on one procrastinate queue."
    ]

    if not args.skip_replicas:
        before = os.getloadavg()[0]
        trials, (clients, searches, rate), readyz = _kept(
            "replicas",
            lambda: (*run_replicas(args.replicas, args.trials, args.seconds), list(READYZ_MS)),
        )
        load_replicas = _kept(
            "load_replicas",
            lambda: f"{before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        )
        rows: list[list[object]] = [
            ["admin call returns (policy committed)", *_ms([t.ack for t in trials])],
            ["every replica's snapshot at the new version (`/readyz`)",
             *_ms([t.all_versions for t in trials])],
            ["first search through the balancer without the document",
             *_ms([t.first_clean for t in trials])],
            ["every replica has answered a search without it",
             *_ms([t.all_clean for t in trials])],
        ]  # fmt: skip
        searches_ms = 1000 * statistics.median([t.all_clean - t.first_clean for t in trials])
        readyz_ms = statistics.median(readyz)
        parts.append(
            f"""### Revocation through the balancer

{len(trials)} trials, {args.replicas} replicas: a deny rule for one document is added through
`POST /admin/policies/rules` (served by whichever replica nginx picks), then the affected user
searches through the balancer (2026-07-28, official SDK client, one search at a time) until
every replica has answered without the document; `/readyz` of each replica is polled
directly at the same time. Times from sending the admin call; the rule is removed and the
document seen again on every replica between trials.

{markdown_table(["until", "median ms", "max ms"], rows)}

Load average during this part: {load_replicas}. The change reaches every replica by
`LISTEN/NOTIFY` (18 ms from the commit in "Policy revocation" above); here the "snapshot"
row is bounded by the `/readyz` polls themselves (each checks the database and the
migrations: median {readyz_ms:.0f} ms per poll on this loaded machine). The search rows add
the searches (one at a time, so "every replica" needs at least {args.replicas} searches:
median {searches_ms:.0f} ms between the first clean answer and the last replica's). No
search returned the document after its replica had answered without it (the loop would not
end otherwise), and `tests/scale/test_replicas.py` asserts it stays gone.

### Search throughput through the balancer

{clients} closed-loop MCP clients (2026-07-28) for {args.seconds:.0f} s through nginx onto
{args.replicas} replicas: **{searches} searches, {rate:.1f}/s**, {rate / (cores or 1):.1f}
per core. The replicas share {cores} cores, so adding replicas on one machine adds
no CPU: more replicas pay off on more machines (docs/scaling.md)."""
        )

    if not args.skip_workers:
        before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            sources = _write_corpus(Path(tmp), args.sources, args.docs)

            def measure_workers() -> list[WorkerRun]:
                out = []
                for count, threads in ((1, None), (2, None), (2, 1)):
                    print(f"{count} worker(s), threads {threads or 'all'} ...", flush=True)
                    out.append(run_workers(count, threads, sources))
                return out

            runs = _kept("workers", measure_workers)
        base = runs[0].chunks / runs[0].seconds
        load_workers = _kept(
            "load_workers",
            lambda: f"{before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        )
        ratio_all = runs[1].chunks / runs[1].seconds / base
        ratio_one = runs[2].chunks / runs[2].seconds / base
        rows = [
            [r.workers, r.threads, r.docs, r.chunks, f"{r.seconds:.1f}",
             f"{r.docs / r.seconds:.2f}", f"{r.chunks / r.seconds:.1f}",
             f"{r.chunks / r.seconds / base:.2f}x"]
            for r in runs
        ]  # fmt: skip
        header = ["workers", "threads", "documents", "chunks", "seconds", "docs/s", "chunks/s"]
        worker_table = markdown_table([*header, "vs 1 worker"], rows)
        parts.append(
            f"""### Worker throughput

The same corpus ({args.sources} folder sources x {args.docs} Markdown notes) synced from
scratch by 1 and by 2 `kb worker` processes on a fresh database each (`kb sync` jobs
enqueued once every worker has loaded its model; timed to the end of the last run). Runs
of one source never overlap, so there is one source per job to spread. "threads" is
`embedding.threads` per worker (all = every core).

{worker_table}

Load average during this part: {load_workers}. Two workers: {ratio_all:.2f}x the chunks/s
of one with every core each, {ratio_one:.2f}x with
one thread each. On a machine this busy with other processes the ratio depends on the
share of the contended CPU the workers get and varies from run to run, so these rows
show the queue spreading
sources over workers (every run succeeded, each source synced once), not what a core
embeds. The per-core figures are in "Ingestion" and "Embedding backends" above."""
        )

    if not args.skip_sizing:
        print(f"HNSW sizing on {args.sizing_chunks} chunks ...", flush=True)
        size = _kept("sizing", lambda: hnsw_sizing(args.sizing_chunks))
        gib = 1024**3
        n = size["chunks"]
        rows = [
            ["HNSW index (m=16, ef_construction=64)", f"{size['index'] / n:.0f}",
             f"{size['index'] / 1024**2:.0f}", f"{n / (size['index'] / gib):,.0f}"],
            ["chunk table with TOAST (text, vector, columns)", f"{size['table'] / n:.0f}",
             f"{size['table'] / 1024**2:.0f}", f"{n / (size['table'] / gib):,.0f}"],
            ["every index of the chunk table (HNSW, GIN, B-tree)",
             f"{size['indexes'] / n:.0f}", f"{size['indexes'] / 1024**2:.0f}",
             f"{n / (size['indexes'] / gib):,.0f}"],
        ]  # fmt: skip
        parts.append(
            f"""### Chunk storage and the HNSW index

{n:,.0f} chunks (384-dimension unit vectors, 800-character texts) loaded with COPY, index
built afterwards in {size["build_s"]:.1f} s with `maintenance_work_mem = 1GB`; sizes from
`pg_relation_size`, `pg_table_size` and `pg_indexes_size`.

{markdown_table(["relation", "bytes per chunk", "MiB", "chunks per GiB"], rows)}

HNSW searches are fast only while the index stays in memory (shared buffers plus the page
cache): the "chunks per GiB" of the index row is the RAM to budget for it."""
        )

    body = "\n\n".join(parts)
    print(body)
    if not args.no_write:
        write_section(HEADING, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
