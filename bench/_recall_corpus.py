"""The generated corpus of the filtered-search benchmark: vectors and document attributes.

Vectors: ``REAL_TEXTS`` (100,000) real passages cut from the CISI abstracts (word windows
of 8-20 words at random offsets, so neighbouring passages overlap as the chunks of one
document do) embedded with the production embedder and cached on disk between runs
(``~/.cache/kb-bench/recall``, or ``$KB_BENCH_CACHE/recall``). A corpus larger than that
reuses the real vectors, each extra copy with Gaussian noise of norm ~0.25, renormalised:
the neighbourhood structure of real text, without hours of embedding.

Attributes: every document gets four independent five-digit buckets (a uniform rank of the
documents, so shares are exact up to rounding), one per attribute family, and its
attributes spell the bucket's digits at increasing depth, so a prefix of k digits selects a
share of 10^-k of the documents:

* ``acl``: ``group:staff`` and ``group:a<d1>`` ... ``group:a<d1..d5>`` (bucket 1);
* ``collection``: ``dept/<d1>/<d2>/<d3>`` (bucket 2; 1,000 leaf collections);
* ``path``: ``/p/<d1>/<d2>/<d3>/<d4>/<d5>/doc-<i>`` (bucket 3);
* ``metadata``: ``{"scope": "all", "m1": "<d1>", ..., "m5": "<d1..d5>"}`` (bucket 4).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench._kbdata import cisi_documents

REAL_TEXTS = 100_000
CHUNKS_PER_DOC = 4
DIGITS = 5
_PART = 2_000  # texts embedded (and saved) per cache part, so an interrupted run resumes
CACHE = Path(os.environ.get("KB_BENCH_CACHE", Path.home() / ".cache" / "kb-bench")) / "recall"


def passages(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct word windows of the CISI titles and abstracts (deterministic)."""
    rng = np.random.default_rng(seed)
    words = [(d.title + " " + d.text).split() for d in cisi_documents()]
    words = [w for w in words if len(w) >= 12]
    weights = np.asarray([len(w) for w in words], dtype=np.float64)
    weights /= weights.sum()
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        for d in rng.choice(len(words), size=n, p=weights):
            w = words[d]
            length = int(rng.integers(8, 21))
            start = int(rng.integers(0, max(1, len(w) - length + 1)))
            text = " ".join(w[start : start + length])
            if text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) == n:
                    break
    return out


def _part_path(embedder_name: str, texts: Sequence[str]) -> Path:
    digest = hashlib.sha256(embedder_name.encode())
    for t in texts:
        digest.update(t.encode() + b"\x00")
    return CACHE / f"part-{digest.hexdigest()[:20]}.npy"


def real_vectors(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    """Embeddings of ``texts`` (unit length), cached in parts of 2,000 texts."""
    CACHE.mkdir(parents=True, exist_ok=True)
    parts: list[np.ndarray] = []
    t0 = time.perf_counter()
    fresh = 0
    for start in range(0, len(texts), _PART):
        chunk = texts[start : start + _PART]
        path = _part_path(embedder.name, chunk)
        if path.exists():
            parts.append(np.load(path))
            continue
        vectors = np.asarray(embedder.embed_documents(list(chunk)), dtype=np.float32)
        np.save(path, vectors)
        parts.append(vectors)
        fresh += len(chunk)
        rate = fresh / (time.perf_counter() - t0)
        print(f"  embedded {start + len(chunk):,}/{len(texts):,} passages ({rate:.0f}/s)")
    out = np.concatenate(parts)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def expand(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors: the real ones first, then noisy copies of them, shuffled."""
    if n <= len(real):
        return real[rng.permutation(len(real))[:n]].copy()
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    step = 200_000  # bounded temporaries at a million rows
    for lo in range(len(real), n, step):
        hi = min(n, lo + step)
        src = real[rng.integers(0, len(real), hi - lo)]
        noise = rng.normal(scale=0.25 / np.sqrt(real.shape[1]), size=src.shape)
        block = src + noise.astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[lo:hi] = block
    rng.shuffle(out)  # rows, in place: no second copy of a million vectors
    return out


@dataclass(frozen=True)
class Corpus:
    """Documents' attributes (one entry per document) and chunk vectors (row = chunk)."""

    vectors: np.ndarray  # (n_docs * CHUNKS_PER_DOC, dims); chunk j of doc i is row 4i+j
    ids: list[uuid.UUID]
    acl: list[tuple[str, ...]]
    collection: list[str]
    path: list[str]
    metadata: list[dict[str, str]]

    @property
    def n_docs(self) -> int:
        return len(self.ids)

    def chunk_doc(self) -> np.ndarray:
        """The document index of every chunk row."""
        return np.repeat(np.arange(self.n_docs), CHUNKS_PER_DOC)


def _digits(n_docs: int, rng: np.random.Generator) -> list[str]:
    buckets = rng.permutation(n_docs) * 10**DIGITS // n_docs
    return [f"{b:0{DIGITS}d}" for b in buckets]


def make_corpus(vectors: np.ndarray, rng: np.random.Generator) -> Corpus:
    n_docs = len(vectors) // CHUNKS_PER_DOC
    b_acl, b_coll, b_path, b_meta = (_digits(n_docs, rng) for _ in range(4))
    return Corpus(
        vectors=vectors[: n_docs * CHUNKS_PER_DOC],
        ids=[uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i) for i in range(n_docs)],
        acl=[("group:staff", *(f"group:a{d[:k]}" for k in range(1, DIGITS + 1))) for d in b_acl],
        collection=[f"dept/{d[0]}/{d[1]}/{d[2]}" for d in b_coll],
        path=[f"/p/{'/'.join(d)}/doc-{i}" for i, d in enumerate(b_path)],
        metadata=[
            {"scope": "all", **{f"m{k}": d[:k] for k in range(1, DIGITS + 1)}} for d in b_meta
        ],
    )
