"""Where one ``search`` call's milliseconds go, phase by phase.

``python -m bench search_profile [--chunks 20000] [--searches 300] [--label after]
[--py-spy 15] [--no-write]``

The corpus, policy and callers of ``bench/throughput.py`` (real CISI text and MiniLM
vectors, thirteen callers of several kinds of rules). Three measurements in one run:

1. **Phases, in process**: ``reading.search`` (what the MCP tool calls: policy filter,
   search service, audit row) one call at a time, distinct queries, the query cache off,
   with the phase markers of :mod:`server.search.timing` collected per call. Phases that
   run concurrently (the keyword leg beside the embedding and the vector leg) each show
   their own wall time.
2. **Statements**: the SQL of one search, captured as the driver sent it, re-run under
   ``EXPLAIN (ANALYZE, BUFFERS)`` in one rolled-back transaction (planning and execution
   time, the plan's main nodes).
3. **MCP over HTTP**: ``kb serve`` on the same database, one client (httpx, keep-alive)
   posting stateless ``tools/call search``, in blocks alternating with in-process calls;
   MCP/JSON/HTTP overhead = MCP p50 - in-process p50. With ``--py-spy N``, py-spy samples
   the server for N seconds under 4 concurrent clients and the samples are grouped by
   the part of the code they were in.

Each run is kept in bench/data/search_profile_<label>.json; the "Search profile" section
of docs/benchmarks.md shows every kept label side by side (``before`` and ``after`` the
lean query path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench._kbdata import ROOT, markdown_table, percentile, write_section
from bench._search_corpus import CALLERS, make_queries, policy_yaml

HEADING = "Search profile"
DATA_DIR = ROOT / "bench" / "data"


# --------------------------------------------------------------------------- in process
@asynccontextmanager
async def direct_context(dsn: str, embedder: Any = None) -> AsyncIterator[tuple[Any, list[Any]]]:
    """The read context ``kb serve`` builds (service, policy engine, audit), in process."""
    from bench._kbdata import load_embedder
    from core.identity import Caller
    from policies.engine import PolicyEngine
    from policies.rules import parse_policy_yaml
    from server.audit.recorder import AuditRecorder
    from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
    from server.embeddings import AsyncEmbedder
    from server.search.service import SearchService
    from server.settings import Settings
    from server.usecases.reading import Readers

    home = tempfile.mkdtemp(prefix="h1-home-")
    settings = Settings(database={"url": dsn}, home=home, embedding={"query_cache_size": 0})
    db = Database.open(DatabaseTarget(to_sqlalchemy_url(dsn)), settings)
    policy = parse_policy_yaml(policy_yaml())
    engine = PolicyEngine.of(policy, version=1)
    model = AsyncEmbedder.configured(embedder or load_embedder(), settings.embedding)
    ctx = Readers(
        search=SearchService(db, model, settings),
        policies=engine,
        audit=AuditRecorder(db, settings.audit),
    )
    callers = [Caller.of(*c.principals, transport="http") for c in CALLERS]
    try:
        yield ctx, callers
    finally:
        model.close()
        await db.dispose()
        shutil.rmtree(home, ignore_errors=True)


async def one_search(ctx: Any, caller: Any, text: str) -> tuple[float, dict[str, float], int]:
    from server.search.schemas import SearchQuery
    from server.search.timing import collecting
    from server.usecases import reading

    with collecting() as times:
        started = time.perf_counter()
        result = await reading.search(ctx, caller, SearchQuery(text=text, top_k=10))
        total = (time.perf_counter() - started) * 1000
    return total, dict(times.ms), len(result.hits)


def capture_statements(ctx: Any) -> tuple[list[tuple[str, Any]], Any]:
    """Record every statement the driver sends (SQL and parameters)."""
    from sqlalchemy import event

    engine = ctx.search._db.engine.sync_engine
    seen: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(engine, "before_cursor_execute", before)


def explain(dsn: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Re-run one search's statements under EXPLAIN (ANALYZE, BUFFERS), rolled back."""
    out: list[dict[str, Any]] = []
    from pgvector.psycopg import register_vector

    with psycopg.connect(dsn, prepare_threshold=None) as conn:
        register_vector(conn)
        for sql, params in statements:
            head = " ".join(sql.split())
            settings = ("SELECT set_config", "SET ")
            if head.startswith(settings) or head.upper().startswith("SELECT 1"):
                conn.execute(sql, params)
                continue
            plan = [
                r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
            ]
            text = "\n".join(plan)
            planning = _ms(text, "Planning Time")
            execution = _ms(text, "Execution Time")
            nodes = [
                ln.strip().lstrip("-> ").split("  (")[0]
                for ln in plan
                if "->" in ln or ln == plan[0]
            ]
            out.append(
                {
                    "statement": _label(head),
                    "planning_ms": planning,
                    "execution_ms": execution,
                    "nodes": [n for n in nodes if n][:6],
                    "plan": text,
                }
            )
        conn.rollback()
    return out


def _ms(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.strip().startswith(key):
            return float(line.split(":")[1].split()[0])
    return float("nan")


def _label(sql: str) -> str:
    low = sql.lower()
    if low.startswith("insert into audit_log"):
        return "audit insert"
    if "bm25_postings" in low:
        return "keyword: scoring"
    if "kb_bm25_terms" in low and ("regexp_matches" in low or "kb_bm25_stem" in low):
        return "hydration: matched words"  # whole texts, or (since session12) words
    if "kb_bm25_terms" in low:
        return "keyword: query weights"
    if "<=>" in low and "count(" not in low:
        return "vector: query"
    if "count(" in low and "chunks" in low:
        return "vector: capped pre-count"
    if "join documents" in low:
        return "hydration: load chunks"
    return sql[:60]


async def profile_direct(
    ctx: Any, callers: list[Any], queries: list[str], searches: int
) -> dict[str, Any]:
    for i in range(20):  # warm-up: pool, plans, first model calls
        await one_search(ctx, callers[i % len(callers)], queries[-1 - i])
    totals: list[float] = []
    phases: dict[str, list[float]] = {}
    hits: list[int] = []
    for i in range(searches):
        total, ms, n = await one_search(ctx, callers[i % len(callers)], queries[i])
        totals.append(total)
        hits.append(n)
        for name, value in ms.items():
            phases.setdefault(name, []).append(value)
    return {"totals": totals, "phases": phases, "hits": hits}


# --------------------------------------------------------------------------- over MCP
async def mcp_vs_direct(
    url: str, tokens: list[str], ctx: Any, callers: list[Any], queries: list[str], calls: int
) -> tuple[list[float], list[float]]:
    """Blocks of 25 MCP calls alternating with 25 in-process calls (same load for both)."""
    from bench.throughput import answer_ok, request_body, request_headers

    over_mcp: list[float] = []
    direct: list[float] = []
    failed: list[str] = []
    async with httpx.AsyncClient(timeout=60) as http:
        for i in range(10):  # warm-up
            await http.post(
                url, headers=request_headers(tokens[i % len(tokens)]),
                json=request_body(i, queries[-100 - i]),
            )  # fmt: skip
        i = 0
        while len(over_mcp) < calls:
            for _ in range(25):
                i += 1
                started = time.perf_counter()
                r = await http.post(
                    url,
                    headers=request_headers(tokens[i % len(tokens)]),
                    json=request_body(i, queries[i]),
                )
                over_mcp.append((time.perf_counter() - started) * 1000)
                if not answer_ok(r.status_code, r.text):
                    failed.append(f"caller {i % len(tokens)}: {r.status_code} {r.text[:200]}")
                    if len(failed) > calls // 20:
                        raise RuntimeError("MCP searches failed:\n" + "\n".join(failed))
            for _ in range(25):
                i += 1
                total, _, _ = await one_search(ctx, callers[i % len(callers)], queries[i])
                direct.append(total)
    for line in failed:
        print(f"failed MCP search: {line}", file=sys.stderr)
    return over_mcp, direct


CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("query embedding (ONNX/torch, worker thread)", ("embed_query", "onnxruntime", "torch")),
    ("audit write", ("_insert_alone", "recorder.py", "audit/group_commit.py")),
    ("policy filter", ("filter_for",)),
    ("search: hydration + re-check + passages", ("_hydrate", "load_chunks", "matched_words")),
    ("search: keyword branch", ("bm25_candidates", "_keyword")),
    ("search: vector branch", ("vector_search", "vector_candidates", "count_allowed")),
    ("search: other", ("server/search/",)),
    # Our server/auth/ only: the SDK's auth middleware (mcp/server/auth/) wraps every MCP
    # request, and matching it counted the SDK's whole request handling as token checks.
    ("token / API key verification", ("mcp_verifier", " (server/auth/", "jwt/")),
    ("MCP SDK (JSON-RPC, validation, per-request server)", ("mcp/", "mcp_types", "pydantic")),
    ("HTTP (uvicorn, h11, starlette, middleware)", ("uvicorn", "h11", "starlette", "server/http")),
    ("SQLAlchemy / psycopg (any query: greenlet stacks hide which)", ("sqlalchemy", "psycopg")),
]


# Leaf frames of a thread that is waiting, not working (py-spy samples them anyway).
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "select (selectors.py", "wait (threading")


def py_spy_summary(raw: Path) -> list[tuple[str, float]]:
    """Share of the server's busy samples per category (first category whose pattern a
    frame of the stack contains, checked in the order above); idle threads left out."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if any(leaf.startswith(p) or f" {p}" in leaf for p in IDLE_LEAVES):
            continue
        total += int(n)
        for name, patterns in CATEGORIES:
            if any(p in stack for p in patterns):
                counts[name] += int(n)
                break
        else:
            counts["other (event loop, asyncio, threads)"] += int(n)
    return [(k, v / total) for k, v in counts.most_common()] if total else []


def run_py_spy(pid: int, seconds: int, url: str, tokens: list[str], queries: list[str]) -> Path:
    """py-spy record on the server while 4 httpx clients keep it busy."""
    from bench.throughput import request_body, request_headers

    out = Path(tempfile.mkdtemp(prefix="h1-spy-")) / "server.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def load() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            counter = 50_000

            async def client() -> None:
                nonlocal counter
                while spy.poll() is None:
                    counter += 1
                    i = counter
                    await http.post(
                        url,
                        headers=request_headers(tokens[i % len(tokens)]),
                        json=request_body(i, queries[i % len(queries)]),
                    )

            await asyncio.gather(*(client() for _ in range(4)))

    asyncio.run(load())
    spy.wait()
    return out


# --------------------------------------------------------------------------- report
def phase_rows(result: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(phase, p50 ms, mean ms) in the order the phases happen."""
    order = [
        "policy filter",
        "search service",
        "embed query",
        "vector branch",
        "vector: capped pre-count",
        "vector: settings",
        "vector: query",
        "vector: query (exact)",
        "keyword branch",
        "keyword: settings",
        "keyword: query weights",
        "keyword: scoring",
        "wait for keyword branch",
        "phrase/exclusion check",
        "fusion",
        "hydration",
        "hydration: load + re-check",
        "hydration: matched words",
        "audit write",
    ]
    phases: dict[str, list[float]] = result["phases"]
    names = [n for n in order if n in phases] + sorted(set(phases) - set(order))
    n = len(result["totals"])
    rows = []
    for name in names:
        values = phases[name] + [0.0] * (n - len(phases[name]))
        rows.append((name, statistics.median(values), statistics.fmean(values)))
    return rows


def render(runs: dict[str, dict[str, Any]]) -> str:
    labels = list(runs)
    names: list[str] = []
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for label, run in runs.items():
        for name, p50, mean in phase_rows(run["direct"]):
            if name not in names:
                names.append(name)
            table.setdefault(name, {})[label] = (p50, mean)
    header = ["phase"] + [f"{lab} p50 / mean ms" for lab in labels]
    rows: list[list[object]] = []
    for name in names:
        cells: list[object] = [name]
        for lab in labels:
            got = table[name].get(lab)
            cells.append(f"{got[0]:.2f} / {got[1]:.2f}" if got else "(gone)")
        rows.append(cells)
    summary: list[list[object]] = []
    for label, run in runs.items():
        d = run["direct"]["totals"]
        m, md = run["mcp"], run["mcp_direct"]
        summary.append(
            [
                label,
                f"{statistics.median(d):.1f}",
                f"{percentile(d, 95):.1f}",
                f"{statistics.median(md):.1f}" if md else "",
                f"{statistics.median(m):.1f}" if m else "",
                f"{percentile(m, 95):.1f}" if m else "",
                f"{statistics.median(m) - statistics.median(md):.1f}" if m and md else "",
                run["load"],
            ]
        )
    parts = [
        markdown_table(
            [
                "run",
                "in process p50 ms",
                "p95 ms",
                "in process p50 (interleaved)",
                "MCP HTTP p50 ms",
                "MCP p95 ms",
                "MCP/HTTP overhead p50 ms",
                "load avg",
            ],
            summary,
        ),
        *[f"Note on `{label}`: {run['note']}" for label, run in runs.items() if run.get("note")],
        "Phases of `reading.search` in process (one call at a time):",
        markdown_table(header, rows),
    ]
    for label, run in runs.items():
        stmts = run.get("explain") or []
        if stmts:
            parts.append(f"Statements of one search, `{label}` (EXPLAIN ANALYZE, BUFFERS):")
            parts.append(
                markdown_table(
                    ["statement", "planning ms", "execution ms", "plan"],
                    [
                        [
                            s["statement"],
                            f"{s['planning_ms']:.2f}",
                            f"{s['execution_ms']:.2f}",
                            " / ".join(s["nodes"][:4]).replace("|", "\\|"),
                        ]
                        for s in stmts
                    ],
                )
            )
        spy = run.get("py_spy") or []
        if spy:
            parts.append(
                f"Server CPU samples by part, `{label}` (py-spy, 4 clients, idle threads left out):"
            )
            parts.append(
                markdown_table(
                    ["part", "share of samples"], [[k, f"{v * 100:.0f} %"] for k, v in spy]
                )
            )
    return "\n\n".join(parts)


def _natural(path: Path) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.stem)]


def load_runs() -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    for label in ("before", "after"):
        path = DATA_DIR / f"search_profile_{label}.json"
        if path.exists():
            runs[label] = json.loads(path.read_text())
    # Natural order, so that session11 comes after session7.
    for path in sorted(DATA_DIR.glob("search_profile_*.json"), key=_natural):
        label = path.stem.removeprefix("search_profile_")
        runs.setdefault(label, json.loads(path.read_text()))
    return runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench search_profile", description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--real", type=int, default=4000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--mcp-calls", type=int, default=200)
    parser.add_argument("--py-spy", type=int, default=0, help="seconds of py-spy on the server")
    parser.add_argument("--label", default="after")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the docs section from kept runs"
    )
    parser.add_argument("--note", help="with --render: a note on --label's run, kept with it")
    args = parser.parse_args(argv)
    if args.render:
        if args.note:
            path = DATA_DIR / f"search_profile_{args.label}.json"
            kept = json.loads(path.read_text())
            kept["note"] = args.note
            path.write_text(json.dumps(kept))
        runs = load_runs()
        first = next(iter(runs.values()))
        args.searches, args.mcp_calls = first["searches"], len(first["mcp"])
        write_section(HEADING, intro(args, first["chunks"]) + "\n\n" + render(runs))
        return 0

    from bench._kbdata import load_embedder
    from bench.throughput import bearer_tokens, kb_serve, site

    queries = make_queries(20_000)
    load_before = os.getloadavg()[0]
    with site(args.chunks, args.real) as s:
        embedder = load_embedder()

        async def in_process() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            async with direct_context(s.dsn, embedder) as (ctx, callers):
                result = await profile_direct(ctx, callers, queries, args.searches)
                seen, stop = capture_statements(ctx)
                # A team member (12 % readable), a hybrid query with real words.
                await one_search(ctx, callers[0], queries[5000])
                stop()
            return result, explain(s.dsn, seen)

        direct, plans = asyncio.run(in_process())
        with kb_serve(s) as proc:
            tokens = bearer_tokens(s)

            async def over_http() -> tuple[list[float], list[float]]:
                async with direct_context(s.dsn, embedder) as (ctx, callers):
                    return await mcp_vs_direct(
                        s.url, tokens, ctx, callers, queries[6000:], args.mcp_calls
                    )

            over_mcp, mcp_direct = asyncio.run(over_http())
            spy: list[tuple[str, float]] = []
            if args.py_spy:
                raw = run_py_spy(proc.pid, args.py_spy, s.url, tokens, queries)
                spy = py_spy_summary(raw)
        chunks = s.chunks
    run = {
        "label": args.label,
        "chunks": chunks,
        "searches": args.searches,
        "load": f"{load_before:.1f} / {os.getloadavg()[0]:.1f}",
        "direct": direct,
        "explain": [{k: v for k, v in p.items() if k != "plan"} for p in plans],
        "mcp": over_mcp,
        "mcp_direct": mcp_direct,
        "py_spy": spy,
    }
    for p in plans:
        print(f"--- {p['statement']}\n{p['plan']}\n")
    for name, p50, mean in phase_rows(direct):
        print(f"{name:32s} p50 {p50:7.2f} ms  mean {mean:7.2f} ms")
    print(
        f"in process: p50 {statistics.median(direct['totals']):.1f} ms; MCP HTTP p50 "
        f"{statistics.median(over_mcp):.1f} ms vs interleaved in-process "
        f"{statistics.median(mcp_direct):.1f} ms"
    )
    for k, v in spy:
        print(f"{v * 100:5.1f} %  {k}")
    if not args.no_write:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        (DATA_DIR / f"search_profile_{args.label}.json").write_text(json.dumps(run))
        write_section(HEADING, intro(args, chunks) + "\n\n" + render(load_runs()))
        print("wrote docs/benchmarks.md")
    return 0


def intro(args: argparse.Namespace, chunks: int) -> str:
    return f"""`python -m bench search_profile --label <before|after> --py-spy 15` ({chunks:,} \
chunks, {args.searches} searches in process, {args.mcp_calls} over MCP; \
{platform.machine()}, {os.cpu_count()} cores shared with other work, Python \
{platform.python_version()}; each label is a separate run kept in \
`bench/data/search_profile_<label>.json`).

The corpus, policy and callers of the throughput benchmark (below). In process:
`reading.search` (policy filter, search service, audit row) one call at a time, distinct
queries, query cache off, thirteen callers in turn, phases from `server.search.timing`
(concurrent phases each show their own wall time: the keyword branch runs beside the query
embedding; before `session5` it also ran beside the vector branch, on a connection of its
own). Over MCP: `kb serve` on the same database, one httpx
client posting stateless 2026-07-28 `tools/call search`, in blocks of 25 alternating with
in-process calls; the difference of the two p50s is what HTTP, token verification,
JSON-RPC and the MCP SDK add. Statements: the SQL one search sends, re-run under
`EXPLAIN (ANALYZE, BUFFERS)` on a fresh connection (so the first call of each SQL
function in that backend is included).

What `after` changed (the lean path, `server/search/`):

- **No pre-count per search.** Whether the caller's allowed set is small enough for an
  exact scan (the capped count) is cached per policy version, principals, API-key
  narrowing and filters for 30 s (`SearchTuning.scope_ttl_s`); it only picks the plan,
  never the rows. A restrictive caller stays correct without it: an HNSW walk that comes
  back with fewer rows than asked is redone as an exact scan in the same transaction
  (`SearchService.vector_branch` reports `exact`, `hnsw` or `hnsw-then-exact`).
- **Fewer round trips.** HNSW walk settings are set once per pooled connection (they are
  the same for every caller), not per search; the vector query, the phrase check and the
  hydration share one connection and one transaction; the BM25 weights statement also
  sets its transaction-local parallelism; the audit row is written apart from the search
  (it must be, when the search fails).
- **Plans.** Statements whose plan depends on the caller's selectivity (vector query,
  capped count, BM25 scoring) are never prepared, so each is planned with its real values
  (no `plan_cache_mode` round trip); by-id statements stay prepared, which they now can:
  read transactions commit instead of rolling back (a rollback makes psycopg forget every
  prepared statement of the connection).
- **Hydration and passages.** Hits are loaded as plain columns (before: whole ORM `Chunk`
  rows including the 384-float embedding and the tsvector); the matched-word statement
  runs the BM25 tokeniser once per distinct word of the hits instead of through the
  compound-token path once per occurrence; BM25 weights look each query term up by
  primary key instead of sorting the whole term table.
- **Query embedding.** Computed once per search; with the query cache on (the default,
  `embedding.query_cache_size`), keyed by model, backend and whitespace-normalised text, and
  identical queries arriving together share one computation. These runs turn the cache
  off and never repeat a query.
- **Audit row in autocommit** (`session11`): a lone row (one call at a time) is one
  INSERT in autocommit, its own transaction, durable when it returns, without the BEGIN
  and COMMIT round trips; rows of concurrent calls still share one transaction.
- **Matched words remembered** (`session12`): the index terms of each ASCII word of the
  hits are asked of the database once per process (`WordTerms`, at most 50,000 words of
  at most 64 characters), and the query's terms come from the keyword leg's weights
  statement, so a search whose hit words are all known sends no statement for its
  passages (non-ASCII text still goes whole to the database's tokeniser).
- **Long queries on both cores when alone** (after `session13`): a search with no other
  search under way in its process embeds a query of 24 word pieces or more on the ONNX
  batch session's threads, if it is semantic or the corpus holds under 10,000 chunks
  (`SearchTuning.wide_query_below_chunks`; on bigger corpora the keyword leg beside the
  embedding is the longer branch and needs the second core). CISI queries over the 1,679
  CISI chunks, in process, interleaved: p50 27.4 -> 23.5 ms, p95 58.8 -> 41.7 ms. The
  runs in this section (short queries, 20,000 chunks) never take this path.
- **Passages by token** (`session15`): a hit's matched words are found by cutting its text
  into the index tokeniser's tokens and looking each up, not by a regular expression
  alternating every hit's words (compiled per search, tried at every position), and only
  the sentences a passage shows have their spaces tidied. CISI queries over the CISI
  chunks in process, top_k 100, interleaved with the code before: hydration p50 38.5 /
  47.9 -> 26.8 / 27.6 ms; top_k 10: 7.1 / 8.8 -> 6.1 / 6.5 ms.
- **Score-order keyword plan merges the terms' postings** (`session15`): for callers known
  to read many chunks, each term's postings are read in chunk order and merged, and the
  scores summed chunk after chunk (Merge Append under GroupAggregate), instead of a join to
  `unnest()` and a hash table of every matching chunk (one statement per term count up to
  32, padded with terms that match nothing).

Reading the CPU tables: until `session11` the part "token / API key verification"
matched any frame under `server/auth/`, which the SDK's own bearer middleware
(`mcp/server/auth/`) is, so it counted the SDK's request handling below that middleware;
from `session11` it counts only this project's verifier and JWT decoding (about 1 % of
the samples), and the rest is under "MCP SDK"."""


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
