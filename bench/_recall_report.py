"""Tables, plots and the docs/benchmarks.md section of the filtered-search benchmark.

One run measures one corpus size; the section keeps a ``### N chunks`` block per size, so
the 100,000 and 1,000,000 runs (minutes apart, or on different days) sit side by side and
each states its own command, timings and machine load.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench._kbdata import BENCHMARKS_MD, IMG_DIR, ROOT, markdown_table, percentile, write_section
from bench._recall_load import LoadTimes
from bench._recall_policy import SHAPES

HEADING = "Recall under restrictive policies"
TARGET_RECALL = 0.95


@dataclass
class Row:
    config: str
    shape: str
    level: int
    allowed: int
    recall: float
    recall_min: float
    min_returned: int
    p50_ms: float
    p95_ms: float
    plan: str

    @property
    def label(self) -> str:
        return f"{10.0**-self.level * 100:g} %"


@dataclass
class ListingRow:
    """``list_sources`` of one caller: ``p50_ms``/``p95_ms``/``all_ms`` are cold calls (the
    first after a documents write: before session 9 the counts query ran, since then the
    cached count is brought forward from the change log), ``warm_*`` the cached ones,
    ``first_ms`` the caller's very first call (a full count). Runs saved before a column
    existed have NaN there."""

    shape: str
    level: int
    documents: int  # what every call answered (-1: calls disagreed)
    expected: int
    p50_ms: float
    p95_ms: float
    all_ms: list[float] = field(default_factory=list)
    warm_p50_ms: float = float("nan")
    warm_p95_ms: float = float("nan")
    warm_ms: list[float] = field(default_factory=list)
    first_ms: float = float("nan")


@dataclass
class RunInfo:
    chunks: int
    documents: int
    queries: int
    real_vectors: int
    load: LoadTimes
    truth_s: float
    total_s: float
    peak_self_mb: float
    peak_postgres_mb: float
    peak_total_mb: float
    command: str
    machine: str = ""

    def __post_init__(self) -> None:
        if not self.machine:
            self.machine = _machine()


def _machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = 0.0
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Python {platform.python_version()},"
        f" load average {load:.1f} at the end (the machine was shared)"
    )


def _p95_target(chunks: int) -> float:
    return 50.0 if chunks <= 100_000 else 150.0


def misses(rows: list[Row], chunks: int) -> list[str]:
    out = []
    for r in rows:
        what = []
        if r.recall < TARGET_RECALL:
            what.append(f"recall@10 {r.recall:.3f}")
        if r.allowed >= 10 and r.min_returned < 10:
            what.append(f"only {r.min_returned} results")
        if r.p95_ms > _p95_target(chunks):
            what.append(f"p95 {r.p95_ms:.0f} ms")
        if what:
            out.append(f"{r.config} / {r.shape} / {r.label}: " + ", ".join(what))
    return out


def _scale(chunks: int) -> str:
    return f"{chunks:,} chunks"


def _main_table(rows: list[Row], config: str) -> str:
    return markdown_table(
        ["shape", "readable", "allowed chunks", "recall@10", "worst query", "min results",
         "p50 ms", "p95 ms", "plan"],
        [
            (r.shape, r.label, f"{r.allowed:,}", f"{r.recall:.3f}", f"{r.recall_min:.1f}",
             r.min_returned, f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}", r.plan)
            for r in rows if r.config == config
        ],
    )  # fmt: skip


def _config_table(rows: list[Row], configs: list[str]) -> str:
    by = {(r.config, r.shape, r.level): r for r in rows}
    body = []
    for shape in SHAPES:
        for level in sorted({r.level for r in rows}):
            cells: list[object] = [shape, f"{10.0**-level * 100:g} %"]
            for c in configs:
                r = by[(c, shape, level)]
                cells.append(f"{r.recall:.3f} / {r.p95_ms:.0f} / {r.plan}")
            body.append(cells)
    header = ["shape", "readable", *(f"{c}: recall / p95 ms / plan" for c in configs)]
    return markdown_table(header, body)


def _listing_table(listed: list[ListingRow]) -> str:
    return markdown_table(
        ["shape", "readable", "documents (SQL)", "documents (Python)", "first call ms",
         "cold p50 ms", "cold p95 ms", "warm p50 ms", "warm p95 ms"],
        [
            (r.shape, f"{10.0**-r.level * 100:g} %", f"{r.documents:,}", f"{r.expected:,}",
             f"{r.first_ms:.1f}", f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}", f"{r.warm_p50_ms:.2f}",
             f"{r.warm_p95_ms:.2f}")
            for r in listed
        ],
    )  # fmt: skip


def _listing_summary(listed: list[ListingRow]) -> str:
    cold = [t for r in listed for t in r.all_ms]
    warm = [t for r in listed for t in r.warm_ms]
    first = [r.first_ms for r in listed if r.first_ms == r.first_ms]  # not NaN
    text = f"cold p50 {percentile(cold, 50):.1f} ms, p95 {percentile(cold, 95):.1f} ms"
    if first:
        text = (
            f"first call p50 {percentile(first, 50):.1f} ms, p95 {percentile(first, 95):.1f} ms"
            f"; {text}"
        )
    if warm:
        text += f"; warm p50 {percentile(warm, 50):.2f} ms, p95 {percentile(warm, 95):.2f} ms"
    return text


def print_tables(rows: list[Row], listed: list[ListingRow], info: RunInfo) -> None:
    configs = list(dict.fromkeys(r.config for r in rows))
    for c in configs:
        print(f"\n{c} ({_scale(info.chunks)}):")
        print(_main_table(rows, c))
    print("\nlist_sources:")
    print(_listing_table(listed))
    print(f"list_sources over all callers: {_listing_summary(listed)}")
    for m in misses(rows, info.chunks):
        print("MISSED:", m)


def plot(rows: list[Row], info: RunInfo, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    prod = [r for r in rows if r.config == "production"] or rows
    for shape in SHAPES:
        mine = sorted((r for r in prod if r.shape == shape), key=lambda r: -r.level)
        xs = [10.0**-r.level * 100 for r in mine]
        ax1.plot(xs, [r.recall for r in mine], marker="o", label=shape)
        ax2.plot(xs, [r.p95_ms for r in mine], marker="o", label=shape)
    ax1.axhline(TARGET_RECALL, color="grey", linestyle="--", linewidth=1)
    ax2.axhline(_p95_target(info.chunks), color="grey", linestyle="--", linewidth=1)
    ax1.set_ylabel("recall@10 (truth: numpy over the allowed chunks)")
    ax2.set_ylabel("p95 of the vector branch (ms)")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("share of documents the caller may read (%)")
        ax.legend(fontsize=8)
    fig.suptitle(f"Filtered vector search, production path, {_scale(info.chunks)}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _load_text(ld: LoadTimes) -> str:
    if ld.reused:
        return "Database kept from the run that loaded it (`--keep`), whose load took:"
    return "Load (tables UNLOGGED, binary COPY, indexes built after it):"


def _block(rows: list[Row], listed: list[ListingRow], info: RunInfo, image: str) -> str:
    configs = list(dict.fromkeys(r.config for r in rows))
    ld = info.load
    every = [t for r in listed for t in r.all_ms]
    wrong = [r for r in listed if r.documents != r.expected]
    missed = misses(rows, info.chunks)
    miss_text = "\n".join(f"- {m}" for m in missed) if missed else "- none"
    return f"""### {_scale(info.chunks)}

`{info.command}`: {info.documents:,} documents x 4 chunks, {info.real_vectors:,} real
MiniLM vectors (the rest noisy copies), {info.queries} queries; {ld.versions}; {info.machine}.
{_load_text(ld)} COPY {ld.copy_s:.0f} s; HNSW build {ld.hnsw_s:.0f} s (m=16,
ef_construction=64, `maintenance_work_mem` {ld.maintenance_work_mem}, 2 parallel workers); the
other chunk indexes {ld.other_indexes_s:.0f} s; chunks table {ld.table_mb:,.0f} MB, HNSW index
{ld.hnsw_mb:,.0f} MB; ground truth {info.truth_s:.0f} s; whole run {info.total_s / 60:.1f} min{
        " (without the load)" if ld.reused else ""
    };
peak memory (PSS, sampled each second) {info.peak_total_mb / 1024:.1f} GiB: the benchmark
process {info.peak_self_mb / 1024:.1f} GiB, PostgreSQL {info.peak_postgres_mb / 1024:.1f} GiB.

Production configuration:

{_main_table(rows, "production") if "production" in configs else ""}

![recall and p95 by selectivity and shape]({image})

All configurations (same queries, interleaved):

{_config_table(rows, configs)}

Targets missed (recall@10 < 0.95, fewer than 10 results with >= 10 allowed, p95 over
{_p95_target(info.chunks):.0f} ms):

{miss_text}

`list_sources` through the use case (policy filter, counts per source and collection,
audit row), every caller, shuffled, {len(listed[0].all_ms) if listed else 0} rounds of: one
announced documents write, every caller once *cold* (its cached count is stale: since
session 9 it is brought forward from the documents change log, before that the counts
query ran again), then once *warm* (cached per caller until the next write); *first call*
is each caller's very first listing (the full count). Over all {len(every):,}
cold calls and as many warm: {_listing_summary(listed)}; counts (cold or warm) that differ
from the independent evaluation: {len(wrong)}.

{_listing_table(listed)}
"""


INTRO = """\
`python -m bench search_recall --chunks N` (`make bench NAME=search_recall ARGS="--chunks N"`).
A generated corpus (bench/_recall_corpus.py): 100,000 real passages of the CISI abstracts
(word windows of 8-20 words) embedded with all-MiniLM-L6-v2 and cached on disk; a million
chunks reuse them with Gaussian noise (norm ~0.25). Every document carries an ACL, a
collection, a path and metadata spelling four independent five-digit buckets, so that for
each predicate shape a caller exists at 100 / 10 / 1 / 0.1 % of the documents
(bench/_recall_policy.py): `acl:source` overlap; a collection prefix; a path prefix; an
OR of 20 rules of mixed kinds (collection, collection with a metadata condition, path,
metadata condition, `acl:source`); allow minus a deny (`AND NOT`); a metadata condition.
The rules go through the policy file parser and `PolicyEngine`, which compiles the SQL
predicate; each query is the production vector branch, `SearchService.vector_search`
with 40 candidates (what `search` asks for top-10).

- **Ground truth outside PostgreSQL**: numpy brute-force cosine over the allowed chunks,
  the allowed set decided by a separate Python evaluation of the same rules over the
  generated attributes (bench/_recall_truth.py); tests/search/test_recall_truth.py checks
  that evaluator against the SQL predicate on a small corpus. Nothing is true by
  construction: an exact plan can still lose a row if the predicate were wrong.
- **recall@10**: mean over the queries of |returned top-10 ∩ true top-10| / 10;
  **worst query** its minimum; **min results**: the fewest rows any query returned.
- **p50 / p95**: wall-clock of the whole vector branch (its transaction, the `SET LOCAL`s,
  any pre-count, the query), the database part of a search.
- **plan**: what PostgreSQL chose for that very statement: for the first three queries of
  each caller the call is repeated (untimed) and each statement ordering by `<=>` is
  preceded by `EXPLAIN` of itself on the same connection, in the same transaction, with
  the same parameters and settings. `HNSW` = index order, nothing to filter; `iterative
  HNSW` = index order with the access predicate as a filter (iterative scans on);
  `exact (...)` = the allowed rows found by the named index or a scan, then sorted by
  distance; `a -> b` = the service ran a second statement (an HNSW walk that came back
  short, redone exactly).
- Configurations: **production** (`SearchTuning()` as shipped: `ef_search` 1000 at a
  million chunks, scaled with the square root of the corpus, 316 at 100,000);
  **pgvector-defaults** (`ef_search` 40 at every size, `max_scan_tuples` 20,000, no
  pre-count); **planner-only** (the shipped HNSW settings, no pre-count: pgvector's cost
  model alone picks the plan); the others (`CONFIGS` in bench/search_recall.py) override
  one or two `SearchTuning` fields, named after them (`ef400`: `ef_search` 400 at every
  size; `strict`: `hnsw.iterative_scan = strict_order`;
  `exact50k`: exact scan below 50,000 allowed chunks). Callers and configurations are
  shuffled per query, so a slow spell of the shared machine hits all.
- **Load**: `documents` and `chunks` are UNLOGGED in the benchmark (no WAL for the COPY
  and the index builds; reads and plans are those of a logged table), the vectors go in
  by binary COPY and the chunk indexes are built after it. `--keep DIR` keeps the loaded
  database (keyed by chunk count and a digest of the generated corpus) and later runs
  reuse it, so a tuning run at a million chunks skips the load.
"""


def _save_json(rows: list[Row], listed: list[ListingRow], info: RunInfo) -> Path:
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"search_recall_{info.chunks}.json"
    data = {
        "info": {**asdict(info), "load": asdict(info.load)},
        "rows": [asdict(r) for r in rows],
        "listing": [asdict(r) for r in listed],
    }
    path.write_text(json.dumps(data, indent=1))
    return path


def _current_blocks() -> tuple[dict[int, str], str]:
    """The section's ``### N chunks`` blocks by size, and its hand-written ``### Findings``
    block (kept as it is, after the measured blocks)."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    m = re.search(rf"^## {re.escape(HEADING)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        return {}, ""
    blocks = {}
    for b in re.finditer(r"^### ([\d,]+) chunks\n.*?(?=^### |\Z)", m.group(1), re.S | re.M):
        blocks[int(b.group(1).replace(",", ""))] = b.group(0).rstrip() + "\n"
    found = re.search(r"^### Findings\n.*?(?=^### |\Z)", m.group(1), re.S | re.M)
    return blocks, found.group(0).rstrip() + "\n" if found else ""


def publish(rows: list[Row], listed: list[ListingRow], info: RunInfo, *, write: bool) -> None:
    print_tables(rows, listed, info)
    saved = _save_json(rows, listed, info)
    print(f"results saved to {saved}")
    if not write:
        return
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    size = f"{info.chunks // 10**6}m" if info.chunks % 10**6 == 0 else f"{info.chunks // 1000}k"
    name = f"search_recall_{size}.png"
    plot(rows, info, IMG_DIR / name)
    blocks, findings = _current_blocks()
    blocks[info.chunks] = _block(rows, listed, info, f"img/{name}")
    body = INTRO + "\n" + "\n".join([*(blocks[n] for n in sorted(blocks)), findings])
    write_section(HEADING, body)
    print(f"wrote docs/benchmarks.md ({HEADING}) and docs/img/{name}")


def republish(path: Path) -> None:
    """Write the docs section and plot again from a run's saved results (no measuring)."""
    data = json.loads(path.read_text())
    info_raw = dict(data["info"])
    info_raw["load"] = LoadTimes(**info_raw["load"])
    info = RunInfo(**info_raw)
    rows = [Row(**r) for r in data["rows"]]
    listed = [ListingRow(**r) for r in data["listing"]]
    publish(rows, listed, info, write=True)
