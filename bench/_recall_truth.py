"""Ground truth outside PostgreSQL: brute-force cosine over each caller's allowed chunks.

The allowed set comes from :func:`bench._recall_policy.allowed_documents` (Python over the
generated attributes), the vectors from the corpus in memory; nothing here reads the
database, so no row of the truth comes from the plan being measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench._recall_corpus import Corpus
from bench._recall_policy import BenchCaller, allowed_documents

K = 10
_BLOCK = 8  # queries scored at once: bounds the score matrix at a million chunks


def allowed_chunks(corpus: Corpus, caller: BenchCaller) -> np.ndarray:
    """Row numbers (into corpus.vectors) of the chunks the caller may read."""
    docs = allowed_documents(corpus, caller)
    return np.flatnonzero(docs[corpus.chunk_doc()])


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, allowed: Sequence[np.ndarray], k: int = K
) -> list[list[np.ndarray]]:
    """For each allowed set and each query: the rows of its k nearest allowed chunks,
    nearest first (cosine; the vectors and queries are unit length)."""
    out: list[list[np.ndarray]] = [[] for _ in allowed]
    everything = [len(rows) == len(vectors) for rows in allowed]
    for lo in range(0, len(queries), _BLOCK):
        scores = queries[lo : lo + _BLOCK] @ vectors.T  # (block, n) similarities
        for a, rows in enumerate(allowed):
            sub = scores if everything[a] else scores[:, rows]
            take = min(k, sub.shape[1])
            if take == 0:
                out[a].extend(np.empty(0, dtype=np.int64) for _ in range(len(sub)))
                continue
            part = np.argpartition(-sub, take - 1, axis=1)[:, :take]
            for qi in range(len(sub)):
                best = part[qi][np.argsort(-sub[qi, part[qi]], kind="stable")]
                out[a].append(best if everything[a] else rows[best])
    return out


def recall_at_k(found: Sequence[int], truth: Sequence[int], k: int = K) -> float:
    """Share of the true top-k found in the returned top-k (1.0 when nothing is allowed)."""
    want = set(truth[:k])
    if not want:
        return 1.0
    return len(want & set(found[:k])) / len(want)
