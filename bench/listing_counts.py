"""``list_sources`` alone at a given number of documents: each caller's first call (a full
count), cold (after a write: brought forward from the change log) and warm, counts checked.

The listing part of ``search_recall`` (:mod:`bench._recall_listing`, the same 24 callers:
six predicate shapes at 100 / 10 / 1 / 0.1 %) without its chunks, vectors and HNSW build:
only the ``documents`` table is loaded (binary-free COPY of the generated attributes of
:mod:`bench._recall_corpus`), so a million-chunk corpus' 250,000 documents load in about a
minute. Counts only read documents, so the figures are those of the full corpus.

Usage: python -m bench listing_counts [--documents 250000] [--reps 10]
(``BENCH_DATABASE_URL`` reuses a server; an already loaded corpus of the same size is kept.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np
import psycopg

from bench._kbdata import percentile
from bench._recall_corpus import CHUNKS_PER_DOC, Corpus, make_corpus
from bench._recall_listing import listing
from bench._recall_load import SOURCE, copy_documents, scratch_server
from bench._recall_policy import allowed_documents, make_callers
from bench._recall_report import _listing_summary, _listing_table


def load_documents(dsn: str, corpus: Corpus) -> float:
    """COPY the corpus' documents (skipped if exactly these are there); seconds taken."""
    with psycopg.connect(dsn) as conn:
        have = conn.execute(
            "SELECT count(*) FROM documents WHERE source = %s", (SOURCE,)
        ).fetchone()
        first = conn.execute("SELECT 1 FROM documents WHERE id = %s", (corpus.ids[0],)).fetchone()
        if have is not None and have[0] == corpus.n_docs and first is not None:
            return 0.0
        t0 = time.perf_counter()
        conn.execute("DELETE FROM documents WHERE source = %s", (SOURCE,))
        conn.execute(
            "INSERT INTO sources (name, kind) VALUES (%s, 'files') ON CONFLICT DO NOTHING",
            (SOURCE,),
        )
        copy_documents(conn, corpus)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE documents")
        return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench listing_counts")
    parser.add_argument("--documents", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(42)  # attributes as search_recall draws them (not its very rows)
    placeholder = np.zeros((args.documents * CHUNKS_PER_DOC, 1), dtype=np.float32)
    corpus = make_corpus(placeholder, rng)
    callers = make_callers()
    expected = [int(allowed_documents(corpus, c).sum()) for c in callers]
    with scratch_server("kb-bench-listing") as dsn:
        took = load_documents(dsn, corpus)
        done = f"loaded in {took:.0f} s" if took else "kept"
        print(f"{corpus.n_docs:,} documents ({done})")
        before = os.getloadavg()
        listed = asyncio.run(listing(dsn, callers, expected, args.reps))
        after = os.getloadavg()
    print(_listing_table(listed))
    print(f"list_sources over all callers, {args.reps} rounds: {_listing_summary(listed)}")
    broad = [t for r in listed if r.level == 0 for t in r.all_ms]
    print(f"cold, 100 % callers only: p50 {percentile(broad, 50):.1f} ms")
    wrong = [f"{r.shape} {r.level}" for r in listed if r.documents != r.expected]
    print(f"counts that differ from the independent evaluation: {wrong or 'none'}")
    print(f"load average (1 min) before {before[0]:.1f}, after {after[0]:.1f}")
    return 1 if wrong else 0
