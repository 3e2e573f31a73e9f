"""Ingestion throughput: end to end versus the embedder alone, on the same chunks.

``python -m bench ingest [--docs 400] [--backend auto|torch-fp32|torch-bf16|onnx-fp32|onnx-int8]
[--no-write]``

1. Generates a corpus of multi-paragraph Markdown and text documents in a temp folder.
2. Ingests it through the real pipeline (files connector -> parse -> chunk -> embed ->
   upsert) into a throw-away embedded Postgres (or ``DATABASE_URL``), timing the sync.
3. In the same process, embeds exactly the chunk texts the pipeline embedded (read back
   from the chunks table), in the pipeline's batch size, timing the model alone.
4. Prints documents/s, chunks/s, raw embedder chunks/s and their ratio (target >= 0.85) and
   writes them to the "Ingestion" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._kbdata import markdown_table, scratch_database, write_section
from bench.throughput import postmaster_pid, tree_cpu_s

TARGET_RATIO = 0.85
_WORDS_TEXT = (
    "policy employee manager request approval budget quarter report customer contract "
    "invoice payment supplier delivery schedule project milestone review security access "
    "account password device network office travel expense receipt training onboarding "
    "benefit leave holiday salary pension insurance health safety incident escalation "
    "ticket service level agreement compliance audit retention archive document template "
    "meeting minutes decision deadline owner team department region market product release"
)
WORDS = _WORDS_TEXT.split()
TOPICS = ("Expenses", "Leave", "Security", "Procurement", "Onboarding", "Incidents", "Travel")


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(9, 22))]
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))


def write_corpus(root: Path, count: int, seed: int = 7) -> None:
    """``count`` documents: Markdown with headings, and plain text, 3-12 paragraphs each."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        if i % 2 == 0:
            parts = [f"# {topic} handbook {i}"]
            for s in range(rng.randint(2, 4)):
                parts.append(f"## {topic} section {s}")
                parts.extend(paragraph(rng) for _ in range(rng.randint(1, 3)))
            (root / f"doc-{i:04d}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        else:
            text = "\n\n".join(paragraph(rng) for _ in range(rng.randint(3, 9)))
            (root / f"doc-{i:04d}.txt").write_text(text + "\n", encoding="utf-8")


# Kept under the table: what limits the ratio, measured once (it does not change per run).
LIMITS = """What limits the ratio is how fast the model is against the rest of the sync, all on
the same two cores. Measured in session 13 (Intel Xeon with AMX; torch-bf16 at about 160
chunks/s alone; the pipeline's stages timed by wrapping them): of the
sync's 12.5 s, 10.0-10.5 s are inside the model, 1.8-1.9 s are the batch writes (COPY, the
BM25 trigger that tokenises every chunk, the HNSW entries: PostgreSQL's 1.9 s of CPU), while
the model waits, and the model runs 15-20 % slower than alone because parsing and chunking
(1.1-1.4 s of CPU on the reader thread, niced; `SCHED_IDLE` and nice 19 measured within the
noise) share its cores. With slower models the same overheads weigh less: 0.77 with
torch-bf16 at 59 chunks/s (session 11), 0.97 with onnx-fp32 at 18 chunks/s (session 12).
Overlap does not help on two cores: each batch written on a thread of its own while the next
one is embedded (one run with a stand-in committer against two of the pipeline as it is)
took 14.0 s end to end against 13.7-13.9, the model's share of the wall time rising from
75-76 % to 89 %: PostgreSQL's work then takes the cores from the model. The work itself
bounds the ratio: the reader's and PostgreSQL's 3 s of CPU take about 1.5 s of both cores
beside the model's 8.3 s, so near 0.84 at best on this machine; a model this fast needs the
indexing to cost less (the BM25 tokeniser is most of PostgreSQL's part)."""


class TimedEmbedder:
    """Wraps the embedder to add up the time the pipeline spends inside the model."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed_documents(self, texts: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - started


def raw_pass(embedder: Any, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed_documents(texts[i : i + batch])
    return time.perf_counter() - started


@contextlib.contextmanager
def database() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        from server.db import migrate
        from server.db.engine import to_sqlalchemy_url

        migrate.upgrade(to_sqlalchemy_url(url))
        yield url
        return
    with scratch_database("kbbenchingest") as uri:
        yield uri


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__)
    parser.add_argument("--docs", type=int, default=400, help="documents to generate")
    parser.add_argument(
        "--backend",
        choices=("auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"),
        default="auto",
        help="embedding.ingest_backend (auto: the fastest that agrees with fp32 here)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args(argv)

    from sqlalchemy import text

    from server.db.engine import DatabaseTarget, make_sync_engine, to_sqlalchemy_url
    from server.embeddings import load_embedder
    from server.embeddings.base import backend_of
    from server.ingest.catalog import get_run
    from server.ingest.chunking import BODY_SEPARATOR
    from server.ingest.service import run_sync
    from server.settings import Settings

    with tempfile.TemporaryDirectory(prefix="kb-bench-ingest-") as tmp, database() as url:
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus, args.docs)
        corpus_bytes = sum(p.stat().st_size for p in corpus.iterdir())
        settings = Settings(
            home=str(Path(tmp) / "home"),
            database={"url": url},
            embedding={"ingest_backend": args.backend},
            sources=[{"name": "bench", "kind": "files", "root": str(corpus)}],
        )
        embedder = load_embedder(settings.embedding)
        backend = backend_of(getattr(embedder, "documents", embedder))
        embedder.embed_documents(["warm up the model"] * 32)
        engine = make_sync_engine(DatabaseTarget(to_sqlalchemy_url(url)), settings)
        try:
            timed = TimedEmbedder(embedder)
            postgres = postmaster_pid(url)
            postgres_cpu = tree_cpu_s(postgres)
            own_cpu = time.process_time()
            started = time.perf_counter()
            result = run_sync(settings, engine, timed, "bench")  # type: ignore[arg-type]
            e2e_s = time.perf_counter() - started
            own_cpu = time.process_time() - own_cpu
            postgres_cpu = tree_cpu_s(postgres) - postgres_cpu
            run = get_run(engine, result.run_id)
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT heading, text FROM chunks ORDER BY id")).all()
        finally:
            engine.dispose()
        texts = [f"{h}{BODY_SEPARATOR}{t}" if h else t for h, t in rows]
        batch = settings.ingest.embed_batch_size or max(128, settings.embedding.batch_size)
        # Best of two passes: on a shared machine this errs towards a lower (harder) ratio.
        raw_s = min(raw_pass(embedder, texts, batch) for _ in range(2))

    docs = int(run["docs_added"])
    chunks = int(run["chunks_written"])
    assert chunks == len(texts), "the chunks read back differ from those written"
    e2e = chunks / e2e_s
    raw = chunks / raw_s
    ratio = e2e / raw
    # Load-independent view: the share of the sync's wall time spent inside the model.
    share = timed.seconds / e2e_s
    table = markdown_table(
        [
            "documents",
            "chunks",
            "MB",
            "end-to-end s",
            "documents/s",
            "chunks/s",
            "raw embedder chunks/s",
            "ratio",
            "sync time in the model",
            "CPU s: kb (model included) / PostgreSQL",
        ],
        [
            [
                docs,
                chunks,
                f"{corpus_bytes / 1e6:.2f}",
                f"{e2e_s:.1f}",
                f"{docs / e2e_s:.1f}",
                f"{e2e:.1f}",
                f"{raw:.1f}",
                f"{ratio:.2f}",
                f"{share:.0%}",
                f"{own_cpu:.1f} / {postgres_cpu:.1f}",
            ]
        ],
    )
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"ingest backend: {backend}")
    print(table)
    print(f"\nratio {ratio:.2f} {verdict} the target of {TARGET_RATIO}")
    if not args.no_write:
        import torch

        cpus = os.cpu_count()
        threads = torch.get_num_threads()
        write_section(
            "Ingestion",
            f"`python -m bench ingest --docs {args.docs} --backend {args.backend}` "
            f"(ingest backend: {backend}): "
            f"{args.docs} generated Markdown and text documents (3-12 paragraphs each) "
            "ingested through the real pipeline (files connector, semchunk chunks of at most "
            "254 tokens with their heading breadcrumb, all-MiniLM-L6-v2, COPY into embedded "
            "PostgreSQL 18), then exactly the same chunk texts embedded again by the model "
            f"alone (best of two passes) in the pipeline's batches of {batch}. "
            f"{platform.machine()}, {cpus} cores "
            f"shared with other work, {threads} torch thread(s); the ratio is end-to-end "
            f"chunks/s over raw embedder chunks/s (target >= {TARGET_RATIO}); the last column "
            "is the share of the sync's wall time spent inside the model, which load on the "
            "machine does not skew (the ratio compares two different moments); CPU is what "
            "the sync cost this process (every thread: model, reader, writer) and "
            "the database's processes, out of the two cores x end-to-end seconds.\n\n"
            f"{table}\n\n{LIMITS}\n",
        )
    return 0
