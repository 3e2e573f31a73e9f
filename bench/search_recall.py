"""Filtered vector search under real policies, at 100,000 and 1,000,000 chunks.

Six predicate shapes (``acl:source``, collection prefix, path prefix, an OR of 20 mixed
rules, allow AND NOT deny, a metadata condition) at four selectivities (100 / 10 / 1 /
0.1 % of the documents), written as policy rules and compiled by the real
``PolicyEngine`` into the predicate production runs; each query goes through the
production vector branch (``SearchService.vector_search``). Per caller and configuration:
recall@10 against a brute-force numpy search over the allowed chunks (decided by an
independent Python evaluation of the rules, never by the database), the fewest results
returned, p50/p95 of the call, and the plan PostgreSQL chose for that very statement
(EXPLAIN of the recorded statement, replayed with its settings). Configurations and
callers are interleaved query by query in a shuffled order. Then ``list_sources`` (the
use case, counts per source and collection in SQL) for every caller, with its p50/p95 and
a check of its counts against the independent evaluation.

Corpus: :mod:`bench._recall_corpus`; callers: :mod:`bench._recall_policy`; truth:
:mod:`bench._recall_truth`; plans: :mod:`bench._recall_plan`; report:
:mod:`bench._recall_report`.

Usage: python -m bench search_recall [--chunks 100000] [--queries 100]
       [--configs production,pgvector-defaults] [--keep DIR [--rebuild]] [--no-write]

``--keep DIR`` keeps the loaded database (indexes built) in ``DIR/<chunks>-<digest>`` and
reuses it on the next run with the same corpus (:mod:`bench._recall_load`), so tuning runs
at a million chunks skip the 20-minute COPY and HNSW build.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench._kbdata import cisi_queries, embed_cached, load_embedder, percentile
from bench._recall_corpus import REAL_TEXTS, expand, make_corpus, passages, real_vectors
from bench._recall_load import chunk_rows, kept_home, load, remember, reuse, scratch_server
from bench._recall_memory import PeakMemory
from bench._recall_plan import PlanProbe, classify_all
from bench._recall_policy import BenchCaller, allowed_documents, make_callers, policy_yaml
from bench._recall_report import ListingRow, Row, RunInfo, publish, republish
from bench._recall_truth import K, allowed_chunks, exact_top, recall_at_k

# Overrides of the production SearchTuning per configuration (fields it does not have
# are skipped, so the benchmark keeps running while the search path changes).
# Widths below are fixed (ef_search_reference_chunks None): production scales its width
# with the corpus (SearchTuning.ef_search at a million chunks).
_FIXED = {"ef_search_reference_chunks": None}
CONFIGS: dict[str, dict[str, Any]] = {
    "production": {},
    "pgvector-defaults": {
        "exact_scan_below": 0,
        "ef_search": 40,
        "max_scan_tuples": 20_000,
        **_FIXED,
    },
    "planner-only": {"exact_scan_below": 0},
    # Tuning experiments (issue 11): the HNSW walk's width, its order, the exact threshold.
    "ef100": {"ef_search": 100, **_FIXED},
    "ef200": {"ef_search": 200, **_FIXED},
    "ef400": {"ef_search": 400, **_FIXED},
    "ef800": {"ef_search": 800, **_FIXED},
    "ef1000": {"ef_search": 1000, **_FIXED},  # pgvector allows at most 1000
    "ef400-strict": {"ef_search": 400, "iterative_scan": "strict_order", **_FIXED},
    "ef400-exact50k": {"ef_search": 400, "exact_scan_below": 50_000, **_FIXED},
}
EXPLAINED_QUERIES = 3  # plans recorded for the first few queries of each caller


def _tuning(overrides: dict[str, Any]) -> Any:
    from server.search import SearchTuning

    names = {f.name for f in dataclasses.fields(SearchTuning)}
    return SearchTuning(**{k: v for k, v in overrides.items() if k in names})


def _limit(tuning: Any) -> int:
    # What ``search`` asks the vector branch for when top_k is 10.
    per_hit = getattr(tuning, "candidates_per_hit", 4)
    low = getattr(tuning, "min_candidates", 40)
    high = getattr(tuning, "max_candidates", 400)
    return int(min(high, max(low, K * per_hit)))


async def measure(
    dsn: str,
    callers: list[BenchCaller],
    queries: np.ndarray,
    truth: list[list[np.ndarray]],
    allowed: list[int],
    configs: list[str],
) -> list[Row]:
    from core.identity import Caller
    from policies.engine import PolicyEngine
    from policies.rules import parse_policy_yaml
    from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
    from server.search import SearchFilters, SearchService
    from server.settings import Settings

    engine = PolicyEngine.of(parse_policy_yaml(policy_yaml(callers)), version=1)
    settings = Settings(database={"url": dsn}, home="/tmp/kb-bench-home")
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(dsn)), settings)
    services = {name: SearchService(db, None, settings, _tuning(CONFIGS[name])) for name in configs}  # type: ignore[arg-type]
    access = [engine.filter_for(Caller.of(*c.principals)) for c in callers]
    probe = PlanProbe(db.engine)
    keys = [(name, ci) for name in configs for ci in range(len(callers))]
    times: dict[tuple[str, int], list[float]] = {k: [] for k in keys}
    recalls: dict[tuple[str, int], list[float]] = {k: [] for k in keys}
    returned: dict[tuple[str, int], list[int]] = {k: [] for k in keys}
    plans: dict[tuple[str, int], Counter[str]] = {k: Counter() for k in keys}
    order = random.Random(11)
    try:
        warm = queries[-1].tolist()  # one unmeasured pass: connections, caches, statistics
        for name, ci in keys:
            svc = services[name]
            await svc.vector_search(access[ci], SearchFilters(), warm, _limit(svc.tuning))
        for qi, q in enumerate(queries):
            vec = q.tolist()
            order.shuffle(keys)
            for key in keys:
                name, ci = key
                svc = services[name]
                t0 = time.perf_counter()
                found = await svc.vector_search(
                    access[ci], SearchFilters(), vec, _limit(svc.tuning)
                )
                times[key].append((time.perf_counter() - t0) * 1000)
                if qi < EXPLAINED_QUERIES:  # the same call again, untimed, with EXPLAIN
                    with probe.explaining() as seen:
                        await svc.vector_search(
                            access[ci], SearchFilters(), vec, _limit(svc.tuning)
                        )
                    plans[key][classify_all(seen)] += 1
                top = [c.chunk_id for c in found[:K]]
                returned[key].append(len(top))
                recalls[key].append(recall_at_k(top, list(truth[ci][qi])))
            if (qi + 1) % 10 == 0:
                print(f"  {qi + 1}/{len(queries)} queries", flush=True)
    finally:
        probe.close()
        await db.dispose()
    rows = []
    for name in configs:
        for ci, c in enumerate(callers):
            key = (name, ci)
            rows.append(
                Row(
                    config=name,
                    shape=c.shape,
                    level=c.level,
                    allowed=allowed[ci],
                    recall=float(np.mean(recalls[key])),
                    recall_min=float(np.min(recalls[key])),
                    min_returned=min(returned[key]),
                    p50_ms=percentile(times[key], 50),
                    p95_ms=percentile(times[key], 95),
                    plan=" / ".join(p for p, _ in plans[key].most_common()),
                )
            )
    return rows


async def listing(
    dsn: str, callers: list[BenchCaller], expected_docs: list[int], reps: int
) -> list[ListingRow]:
    """``list_sources`` through the use case, cold and warm (bench/_recall_listing.py)."""
    from bench._recall_listing import listing as cold_and_warm

    return await cold_and_warm(dsn, callers, expected_docs, reps)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench search_recall")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--configs", default="production,pgvector-defaults,planner-only")
    parser.add_argument("--listing-reps", type=int, default=20)
    parser.add_argument("--maintenance-work-mem", default="3GB")
    parser.add_argument("--tmp-prefix", default="kb-bench-recall")
    parser.add_argument(
        "--keep", metavar="DIR", help="Keep the loaded database under DIR; reuse it if there."
    )
    parser.add_argument("--rebuild", action="store_true", help="With --keep: load afresh.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/ alone.")
    parser.add_argument(
        "--republish", metavar="JSON", help="Rewrite the docs from a saved run (bench/out/)."
    )
    args = parser.parse_args(argv)
    if args.republish:
        republish(Path(args.republish))
        return 0
    args.command = "python -m bench search_recall " + " ".join(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {sorted(CONFIGS)}")
    with PeakMemory() as memory:
        return _run(args, configs, memory)


def _run(args: argparse.Namespace, configs: list[str], memory: PeakMemory) -> int:
    started = time.perf_counter()
    rng = np.random.default_rng(42)
    embedder = load_embedder()
    texts = passages(REAL_TEXTS)[: min(REAL_TEXTS, args.chunks)]
    real = real_vectors(embedder, texts)
    corpus = make_corpus(expand(real, args.chunks, rng), rng)
    del real
    qtexts = [q.text for q in cisi_queries() if q.text][: args.queries]
    queries = embed_cached(embedder, qtexts, query=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    callers = make_callers()
    t0 = time.perf_counter()
    docs_allowed = [allowed_documents(corpus, c) for c in callers]
    rows_allowed = [allowed_chunks(corpus, c) for c in callers]
    truth_rows = exact_top(corpus.vectors, queries, rows_allowed)
    truth_s = time.perf_counter() - t0
    print(f"ground truth (numpy, {len(callers)} callers x {len(queries)} queries): {truth_s:.0f} s")
    home = kept_home(Path(args.keep), corpus, rebuild=args.rebuild) if args.keep else None
    with scratch_server(args.tmp_prefix, memory, keep=home) as dsn:
        loaded = reuse(dsn, home, corpus) if home is not None else None
        if loaded is None:
            loaded = load(dsn, corpus, args.maintenance_work_mem)
            if home is not None:
                remember(home, loaded)
        print(
            f"{'reused' if loaded.reused else 'loaded'} {len(corpus.vectors):,} chunks"
            f"{f' (kept in {home})' if home else ''}: COPY {loaded.copy_s:.0f} s, HNSW"
            f" {loaded.hnsw_s:.0f} s, other indexes {loaded.other_indexes_s:.0f} s",
            flush=True,
        )
        ids = chunk_rows(dsn, corpus)
        truth = [[ids[r] for r in per_query] for per_query in truth_rows]
        rows = asyncio.run(
            measure(dsn, callers, queries, truth, [len(r) for r in rows_allowed], configs)
        )
        listed = asyncio.run(
            listing(dsn, callers, [int(d.sum()) for d in docs_allowed], args.listing_reps)
        )
    info = RunInfo(
        chunks=len(corpus.vectors),
        documents=corpus.n_docs,
        queries=len(queries),
        real_vectors=len(texts),
        load=loaded,
        truth_s=truth_s,
        total_s=time.perf_counter() - started,
        peak_self_mb=memory.peak_self_mb,
        peak_postgres_mb=memory.peak_postgres_mb,
        peak_total_mb=memory.peak_total_mb,
        command=args.command,
    )
    publish(rows, listed, info, write=not args.no_write)
    return 0
