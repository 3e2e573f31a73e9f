"""What `/metrics` costs: the database figures per scrape at several corpus sizes, the
rendering of one scrape, and the instrumentation added to each call.

``python -m bench metrics_scrape [--chunks 10000 100000] [--runs 10000] [--no-write]``
builds a scratch embedded PostgreSQL per size (documents of 10 chunks with random unit
vectors, 20-word texts, ``--runs`` finished ingest runs over 10 sources), times
:func:`server.observability.repository.read_stats` (what a scrape reads from the database
at most every ``metrics.database_interval_s``), then one whole exposition, and writes the
"Metrics cost" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import numpy as np
import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench._kbdata import BulkDoc, bulk_load, markdown_table, scratch_database, write_section
from server.db.engine import to_sqlalchemy_url
from server.observability import metrics, search_clock
from server.observability.collectors import PolicyFigures, ServerCollector
from server.observability.repository import DatabaseStats, read_stats

SOURCES = 10
REPEATS = 7


def fill(dsn: str, chunks: int, runs: int) -> None:
    rng = np.random.default_rng(5)
    words = np.array([f"w{i}" for i in range(5000)])
    docs = []
    for i in range(chunks // 10):
        vectors = rng.normal(size=(10, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        docs.append(
            BulkDoc(
                id=uuid.uuid4(),
                title=f"doc {i}",
                acl=["group:all"],
                collection="bench",
                chunks=[" ".join(rng.choice(words, 20)) for _ in range(10)],
                vectors=vectors,
                source=f"s{i % SOURCES}",
            )
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in range(SOURCES):
            conn.execute(
                "INSERT INTO sources (name, kind) VALUES (%s, 'files') ON CONFLICT DO NOTHING",
                (f"s{s}",),
            )
        conn.execute("DROP INDEX IF EXISTS ix_chunks_embedding_hnsw")  # not what is measured
    bulk_load(dsn, docs, rebuild_index=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ingest_runs (source, status, trigger, queued_at, started_at, finished_at,"
            " docs_seen, docs_added, docs_unchanged, chunks_written)"
            " SELECT 's' || (g %% %s), CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'succeeded' END,"
            " 'schedule', now() - g * interval '1 hour', now() - g * interval '1 hour',"
            " now() - g * interval '1 hour' + (g %% 600) * interval '1 second', 10, 1, 9, 10"
            " FROM generate_series(1, %s) g",
            (SOURCES, runs),
        )
        # What autovacuum does after a bulk load: statistics, and the visibility map that
        # lets the per-source counts read the (source, collection) index alone.
        conn.execute("VACUUM ANALYZE")


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return (time.perf_counter() - started) * 1000


async def measure_database(dsn: str) -> tuple[float, float, DatabaseStats]:
    engine = create_async_engine(to_sqlalchemy_url(dsn))
    sessions = async_sessionmaker(engine)
    holder: list[DatabaseStats] = []

    async def read() -> None:
        async with sessions() as session, session.begin():
            holder.append(await read_stats(session))

    try:
        await read()  # warm the connection and the caches
        times = [await timed(read) for _ in range(REPEATS)]
    finally:
        await engine.dispose()
    return statistics.median(times), max(times), holder[-1]


def measure_exposition(stats: DatabaseStats) -> float:
    collector = ServerCollector(
        policies=PolicyFigures(
            version=7, age_s=1.0, max_age_s=30.0, uncompilable_rules=0, reloads=3
        ),
        pool=None,
        stats=stats,
        read_seconds=0.01,
        version="bench",
    )
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        metrics.exposition(collector)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def per_call_overhead_us() -> dict[str, float]:
    """Microseconds each instrumentation point adds (median of 5 x 20,000 calls)."""
    n = 20_000

    def median_us(fn: Callable[[], object]) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(n):
                fn()
            runs.append((time.perf_counter() - started) / n * 1e6)
        return statistics.median(runs)

    class Query:
        mode = "hybrid"

    class Result:
        hits: tuple[object, ...] = ()

    class Service:
        @metrics.observed_search
        async def search(self, access: object, query: Query) -> Result:
            return Result()

    service, query = Service(), Query()

    async def plain() -> Result:
        return Result()

    async def searches(wrapped: bool) -> float:
        started = time.perf_counter()
        for _ in range(n):
            if wrapped:
                await service.search(None, query)
            else:
                await plain()
        return (time.perf_counter() - started) / n * 1e6

    wrapped = statistics.median(asyncio.run(searches(True)) for _ in range(5))
    bare = statistics.median(asyncio.run(searches(False)) for _ in range(5))

    def stage_add() -> None:
        search_clock.add("recheck", 1e-6)

    def in_search() -> float:
        with search_clock.started():
            return median_us(stage_add)

    return {
        "MCP request (counter + histogram)": median_us(
            lambda: metrics.observe_mcp("tools/call", "search", "ok", 0.01)
        ),
        "audited call (counter)": median_us(
            lambda: metrics.observe_audited("http", "tools/call", "ok")
        ),
        "search wrapper (clock, 5 histograms)": wrapped - bare,
        "stage time, per SQL statement or re-checked row": in_search(),
        "stage time outside a search": median_us(stage_add),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench metrics_scrape")
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    rows = []
    for chunks in args.chunks:
        with scratch_database(f"metrics{chunks}") as dsn:
            t0 = time.perf_counter()
            fill(dsn, chunks, args.runs)
            filled = time.perf_counter() - t0
            median_ms, worst_ms, stats = asyncio.run(measure_database(dsn))
            render_ms = measure_exposition(stats)
            rows.append(
                [
                    f"{chunks:,}",
                    f"{args.runs:,}",
                    f"{median_ms:.1f}",
                    f"{worst_ms:.1f}",
                    f"{render_ms:.2f}",
                ]
            )
            print(f"{chunks} chunks filled in {filled:.0f} s: read {median_ms:.1f} ms median")
    table = markdown_table(
        ["chunks", "ingest runs", "database read, median ms", "worst ms", "render ms"], rows
    )
    overhead = per_call_overhead_us()
    calls = markdown_table(
        ["instrumentation point", "µs per call"], [[k, f"{v:.2f}"] for k, v in overhead.items()]
    )
    print(table)
    print(calls)
    if not args.no_write:
        write_section(
            "Metrics cost",
            "`python -m bench metrics_scrape` (2 shared cores, loaded by other work while it "
            "ran; embedded PostgreSQL 18). The database read is what one `/metrics` scrape "
            "costs at most every `metrics.database_interval_s` (15 s by default; other scrapes "
            f"use the cache): queue depth, documents and chunks per source over {SOURCES} "
            "sources, ingestion totals and run durations; render is the text of one whole "
            "scrape from those figures.\n\n"
            + table
            + "\n\nWhat the instrumentation adds to each call (pure CPU, one process):\n\n"
            + calls
            + "\n\nA search through MCP passes the MCP, audit and search wrappers once, and a "
            "handful of SQL statements and tens of re-checked rows add their stage times: about "
            "0.2 ms in all on this loaded machine, against a search p50 of 40 ms or more "
            "(under 0.5 %).",
        )
    return 0
