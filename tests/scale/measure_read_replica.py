"""Measure read-replica routing on a real streaming replica of the embedded server.

    .venv/bin/python -m tests.scale.measure_read_replica [ROUNDS]

Prints, over ROUNDS document writes on the primary (each one announces itself on
kb_documents, as an ingestion batch does): how long until the server's barrier has heard
it (from then on no replica that has not replayed it serves a read), and how long until
the router serves reads from the replica again (streaming replay plus the recheck
interval); then the cost of one routing decision while the replica is current.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from sqlalchemy import text

from server.db.engine import make_sync_engine
from server.runtime import open_runtime
from server.settings import Settings
from tests.scale.test_read_replica import replicated_cluster


async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Poll every half millisecond: what is measured is a state of another task."""
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        await asyncio.sleep(0.0005)


async def measure(rounds: int, home: Path) -> None:
    with replicated_cluster(home) as cluster:
        doc = uuid.uuid4()
        with psycopg.connect(cluster.primary_uri) as conn:
            conn.execute("INSERT INTO sources (name, kind) VALUES ('m', 'files')")
            conn.execute(
                "INSERT INTO documents (id, source, external_id, uri, title, content_type,"
                " content_hash, collection, path, level, acl) VALUES"
                " (%s, 'm', 'x', 'file:///x', 'x', 'text/plain', 'h', 'c', '/x', 0, '{}')",
                (doc,),
            )
        settings = Settings(
            home=str(home / "kb"),
            database={"url": cluster.primary_uri, "read_replicas": [cluster.replica_uri]},
            auth={"mode": "dev"},
        )
        async with open_runtime(settings, load_model=False) as rt:
            barrier = rt.reads.barrier
            assert barrier is not None

            async def replica_chosen() -> bool:
                return await rt.reads.choose() is not None

            await until(replica_chosen)
            heard_ms: list[float] = []
            back_ms: list[float] = []
            # Through a kb engine, as ingestion writes (its commit announces the write).
            engine = make_sync_engine(rt.target, settings)

            def write() -> None:
                with engine.begin() as conn:
                    conn.execute(
                        text("UPDATE documents SET acl = '{group:x}' WHERE id = :id"), {"id": doc}
                    )

            try:
                for _ in range(rounds):
                    before = barrier.heard
                    await asyncio.to_thread(write)
                    committed = time.perf_counter()
                    await until(lambda: barrier.heard != before)
                    heard_ms.append((time.perf_counter() - committed) * 1000)
                    await until(replica_chosen)
                    back_ms.append((time.perf_counter() - committed) * 1000)
                    await asyncio.sleep(0.05)
            finally:
                engine.dispose()
            calls = 20_000
            started = time.perf_counter()
            for _ in range(calls):
                await rt.reads.choose()
            choose_us = (time.perf_counter() - started) / calls * 1e6
    print(f"read replica routing, {rounds} document writes on the primary (machine shared):")
    print("| measure | median | max |")
    print("|---|---|---|")
    for name, values in (
        ("commit -> barrier has heard it (ms)", heard_ms),
        ("commit -> reads back on the replica (ms)", back_ms),
    ):
        print(f"| {name} | {statistics.median(values):.1f} | {max(values):.1f} |")
    print(f"| one routing decision, replica current (us) | {choose_us:.1f} | |")


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 20
    with tempfile.TemporaryDirectory(prefix="h7-measure-") as tmp:
        asyncio.run(measure(rounds, Path(tmp)))


if __name__ == "__main__":
    main(sys.argv[1:])
