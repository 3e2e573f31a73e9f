"""Embedding backends side by side: speed on 256-token chunks and single queries, and how
far each one's retrieval agrees with torch fp32 on CISI.

``python -m bench embedding [--chunks 192] [--rounds 3] [--no-write]``

1. Builds ``--chunks`` chunks of exactly 254 word pieces (plus [CLS]/[SEP]: the model's
   256 window) from the CISI abstracts, and times ``embed_documents`` on them for every
   backend; rounds interleave the backends (order rotated each round) so load from other
   work on the machine hits them alike; the best round counts.
2. Times ``embed_query`` on ``--queries`` CISI queries one at a time (p50 / p95), interleaved
   query by query across backends, and queries/s with 2 worker threads (as AsyncEmbedder
   runs them with ``embedding.query_threads: 2``).
3. Top-10 agreement with torch fp32: the 1,460 CISI documents (title + abstract) embedded
   with each backend, each CISI query's 10 nearest documents by cosine compared with
   fp32's (mean of |top10 ∩ top10_fp32| / 10). The ``auto`` row pairs the backends auto
   chooses here: chunks from its ingest backend, queries from its query backend.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench._kbdata import (
    CACHE_DIR,
    cisi_documents,
    cisi_queries,
    markdown_table,
    percentile,
    write_section,
)
from server.settings import EmbeddingBackend

BACKENDS: tuple[EmbeddingBackend, ...] = (
    "torch-fp32",
    "torch-bf16",
    "onnx-fp32",
    "onnx-int8",
    "onnx-int8-ffn",
)
REFERENCE: EmbeddingBackend = "torch-fp32"
CHUNK_TOKENS = 254
TARGET_CHUNKS_PER_S = 60.0
TARGET_OVERLAP = 0.98


def fixed_chunks(counter: Any, texts: Sequence[str], count: int) -> list[str]:
    """``count`` texts of exactly CHUNK_TOKENS word pieces cut from the running CISI text."""
    ids: list[int] = []
    for text in texts:
        ids.extend(counter.encode(text, add_special_tokens=False).ids)
    chunks: list[str] = []
    start = 0
    while len(chunks) < count:
        window = ids[start : start + CHUNK_TOKENS + 8]
        if len(window) < CHUNK_TOKENS + 8:
            start = 0
            continue
        text = counter.decode(window)
        # Decoding can merge or split pieces at the edges: trim words until it fits exactly.
        words = text.split()
        while len(counter.encode(" ".join(words), add_special_tokens=False).ids) > CHUNK_TOKENS:
            words.pop()
        chunks.append(" ".join(words))
        start += CHUNK_TOKENS
    return chunks


def top10(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ docs.T
    return np.argsort(-scores, axis=1)[:, :10]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def cached(backend: str, embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    """Vectors are deterministic per backend and text, so reruns reuse them (the timings
    above are always measured afresh)."""
    from server.embeddings.onnx_export import EXPORT_FORMAT

    # An ONNX backend's vectors change with its exported graph: key them by its format too.
    digest = hashlib.sha256(f"{backend}|{embed.__name__}|{EXPORT_FORMAT}|".encode())
    for t in texts:
        digest.update(t.encode() + b"\0")
    path = CACHE_DIR / f"embedding-{digest.hexdigest()[:24]}.npy"
    if path.exists():
        loaded: np.ndarray = np.load(path)
        return loaded
    vectors = np.asarray(embed(texts), dtype=np.float32)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def embed_each(model: Any) -> Callable[[list[str]], np.ndarray]:
    def embed_queries(texts: list[str]) -> np.ndarray:
        return np.vstack([model.embed_query(t) for t in texts])

    return embed_queries


def meets(ok: bool) -> str:
    return "meets" if ok else "misses"


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def machine() -> str:
    from server.embeddings.cpu import BF16_FLAGS, cpu_flags

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = sorted(cpu_flags() & BF16_FLAGS) or ["no native bf16"]
    versions = ", ".join(
        f"{d} {importlib.metadata.version(d)}"
        for d in ("torch", "onnxruntime", "sentence-transformers", "tokenizers")
    )
    return (
        f"{model}, {os.cpu_count()} cores ({', '.join(flags)}), {platform.machine()}, "
        f"Python {platform.python_version()}; {versions}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench embedding", description=__doc__)
    parser.add_argument("--chunks", type=int, default=192, help="256-token chunks per pass")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--queries", type=int, default=56, help="CISI queries timed one by one")
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args(argv)

    from server.embeddings.base import Embedder
    from server.embeddings.factory import load_backend, resolve_model_path
    from server.embeddings.model_layout import read_layout
    from server.embeddings.onnx_export import VARIANTS, default_cache_dir, ensure_onnx_model
    from server.embeddings.selection import choose, detect_capabilities
    from server.embeddings.tokenization import counting_tokenizer
    from server.settings import EmbeddingSettings

    load_before = os.getloadavg()
    settings = EmbeddingSettings()
    path = resolve_model_path(settings.model)
    layout = read_layout(path)
    export_s = {}
    for variant in VARIANTS:
        started = time.perf_counter()
        made = ensure_onnx_model(layout, variant, settings.onnx_cache_dir or default_cache_dir())
        if made.created:
            export_s[variant] = time.perf_counter() - started
    caps = detect_capabilities()
    backends = [b for b in BACKENDS if caps.can_run(b) or b == REFERENCE]
    skipped = [b for b in BACKENDS if b not in backends]
    models: dict[str, Embedder] = {b: load_backend(b, settings, path) for b in backends}
    auto_ingest = choose("auto", "ingest", caps).backend
    auto_query = choose("auto", "query", caps).backend

    counter = counting_tokenizer(layout.tokenizer_file.read_text(encoding="utf-8"))
    documents = cisi_documents()
    doc_texts = [f"{d.title}\n\n{d.text}".strip() for d in documents]
    queries = [q.text for q in cisi_queries()]
    chunks = fixed_chunks(counter, [d.text for d in documents], args.chunks)
    lengths = [models[REFERENCE].count_tokens(c) for c in chunks]
    print(
        f"{len(chunks)} chunks of {min(lengths)}-{max(lengths)} word pieces; {len(queries)} queries"
    )

    for model in models.values():  # warm up: first calls allocate and pick kernels
        model.embed_documents(chunks[:16])
        model.embed_query(queries[0])

    batch_s: dict[str, list[float]] = {b: [] for b in models}
    for r in range(args.rounds):
        order = backends[r % len(backends) :] + backends[: r % len(backends)]
        for b in order:
            batch_s[b].append(timed(lambda b=b: models[b].embed_documents(chunks)))  # type: ignore[misc]
        print(
            f"round {r + 1}: "
            + ", ".join(f"{b} {len(chunks) / batch_s[b][-1]:.1f}/s" for b in backends)
        )

    print(f"batches done ({time.strftime('%X')}); timing single queries")
    query_ms: dict[str, list[float]] = {b: [] for b in models}
    for q in queries[: args.queries]:
        for b in backends:
            query_ms[b].append(1000 * timed(lambda b=b, q=q: models[b].embed_query(q)))  # type: ignore[misc]
    threaded_qps: dict[str, float] = {}
    timed_queries = queries[: 2 * args.queries]
    for b in backends:
        with ThreadPoolExecutor(max_workers=2) as pool:
            elapsed = timed(lambda b=b: list(pool.map(models[b].embed_query, timed_queries)))  # type: ignore[misc]
        threaded_qps[b] = len(timed_queries) / elapsed

    print(f"query latency done ({time.strftime('%X')}); embedding CISI for the overlap")
    doc_vecs = {b: cached(b, models[b].embed_documents, doc_texts) for b in backends}
    query_vecs = {b: cached(b, embed_each(models[b]), queries) for b in backends}
    reference = top10(doc_vecs[REFERENCE], query_vecs[REFERENCE])
    agreement = {b: overlap(top10(doc_vecs[b], query_vecs[b]), reference) for b in backends}
    pair = overlap(top10(doc_vecs[auto_ingest], query_vecs[auto_query]), reference)
    load_after = os.getloadavg()

    fp32_cps = len(chunks) / min(batch_s[REFERENCE])
    rows: list[list[object]] = []
    for b in backends:
        cps = len(chunks) / min(batch_s[b])
        roles = [r for r, chosen in (("ingest", auto_ingest), ("query", auto_query)) if chosen == b]
        rows.append(
            [
                f"`{b}`" + (f" (auto: {', '.join(roles)})" if roles else ""),
                f"{cps:.1f}",
                f"{cps / fp32_cps:.2f}x",
                f"{percentile(query_ms[b], 50):.2f}",
                f"{percentile(query_ms[b], 95):.2f}",
                f"{threaded_qps[b]:.0f}",
                f"{agreement[b]:.3f}",
            ]
        )
    rows.append(
        [
            f"auto pair: chunks `{auto_ingest}`, queries `{auto_query}`",
            "",
            "",
            "",
            "",
            "",
            f"{pair:.3f}",
        ]
    )
    header = [
        "backend",
        "chunks/s (256 tokens)",
        "vs torch-fp32",
        "query p50 ms",
        "query p95 ms",
        "queries/s, 2 threads",
        "top-10 overlap with fp32 (CISI)",
    ]
    table = markdown_table(header, rows)
    ingest_cps = len(chunks) / min(batch_s[auto_ingest])
    verdict = (
        f"auto ingest backend `{auto_ingest}`: {ingest_cps:.1f} chunks/s "
        f"({meets(ingest_cps >= TARGET_CHUNKS_PER_S)} >= {TARGET_CHUNKS_PER_S:.0f}), "
        f"pair overlap {pair:.3f} ({meets(pair >= TARGET_OVERLAP)} >= {TARGET_OVERLAP})"
    )
    print(table)
    print(verdict)
    if skipped:
        print(f"not measured (cannot run here): {', '.join(skipped)}")
    if args.no_write:
        return 0
    exports = (
        "; ".join(f"ONNX {v} export made in this run: {s:.1f} s" for v, s in export_s.items())
        or "ONNX exports reused from the cache (made offline on first use)"
    )
    write_section(
        "Embedding backends",
        f"`python -m bench embedding --chunks {args.chunks} --rounds {args.rounds} "
        f"--queries {args.queries}` "
        f"(ingestion end to end with the auto backend: `python -m bench ingest`). "
        f"Machine: {machine()}. Load average {load_before[0]:.1f} before and "
        f"{load_after[0]:.1f} after: the machine was shared with other work, so absolute "
        "figures are noisy; compare rows (measured interleaved in the same run).\n\n"
        f"Chunks: {len(chunks)} texts of exactly {CHUNK_TOKENS} word pieces cut from the CISI "
        "abstracts (the model's 256 window with [CLS]/[SEP]), one `embed_documents` call "
        f"each pass (batches of {settings.batch_size} inside), best of {args.rounds} "
        f"interleaved rounds. Queries: the first {args.queries} CISI queries, one `embed_query` "
        "each, interleaved "
        "across backends; queries/s with 2 threads is what `embedding.query_threads: 2` gives "
        "(ONNX sessions run concurrently; torch serialises). Overlap: CISI's 1,460 documents "
        "(title + abstract) and 112 queries embedded by each backend, mean share of each "
        f"query's cosine top 10 that torch fp32 also ranks top 10. {exports}.\n\n"
        f"{table}\n\n{verdict}.\n",
    )
    return 0
