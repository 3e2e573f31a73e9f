"""The corpus, policy, callers and queries of the search speed benchmarks
(``search_profile`` and ``throughput``).

Chunks hold real text (three consecutive sentences of a CISI abstract, so the BM25 leg
sees real words); the first ``real`` distinct texts are embedded with the real model
(cached on disk between runs), the rest reuse those texts with noisy mixtures of their
vectors. Documents carry source ACLs for twelve callers in different groups:

* ``group:team0`` .. ``group:team7``: each names ~12 % of the documents (its team's),
  plus everyone reads the ``public`` collection (~5 %);
* ``group:readers``: reads the whole ``corp`` collection (100 %), by a collection rule;
* ``group:tiny``: ~0.5 % of the documents (the exact-scan path);
* ``group:auditors``: an OR of rules (two collections and a path prefix) minus a deny.

Queries are distinct: 3-8 consecutive words of a random CISI sentence, numbered, so no
two calls embed the same text and any query cache misses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

from bench._kbdata import BulkDoc, cisi_documents, embed_cached, sentences

TEAMS = 8
CHUNKS_PER_DOC = 4

POLICY_YAML = """
roles:
{roles}
rules:
  - subject: role:staff
    object: collection:corp/public
  - subject: role:staff
    object: acl:source
  - subject: group:readers
    object: collection:corp
  - subject: group:auditors
    object: collection:corp/finance
  - subject: group:auditors
    object: collection:corp/legal
  - subject: group:auditors
    object: path:/shared/audit/
  - subject: group:auditors
    object: collection:corp/legal/privileged
    effect: deny
""".strip()


def policy_yaml() -> str:
    groups = [f"group:team{i}" for i in range(TEAMS)] + ["group:tiny", "group:readers"]
    return POLICY_YAML.format(roles="\n".join(f"  {g}: role:staff" for g in groups))


@dataclass(frozen=True)
class BenchCaller:
    subject: str
    groups: tuple[str, ...]

    @property
    def principals(self) -> tuple[str, ...]:
        return (f"user:{self.subject}", *(f"group:{g}" for g in self.groups))


CALLERS: tuple[BenchCaller, ...] = (
    *(BenchCaller(f"member{i}", (f"team{i}",)) for i in range(TEAMS)),
    BenchCaller("reader", ("readers",)),
    BenchCaller("newcomer", ("tiny",)),
    BenchCaller("auditor", ("auditors",)),
    BenchCaller("lead", ("team1", "team2")),
)

COLLECTIONS = ("corp/eng", "corp/sales", "corp/finance", "corp/legal", "corp/legal/privileged")


def chunk_texts() -> list[tuple[str, str]]:
    """(title, text) of every three-sentence window of the CISI abstracts."""
    out: list[tuple[str, str]] = []
    for d in cisi_documents():
        parts = sentences(d.text)
        for i in range(0, max(1, len(parts) - 2), 3):
            text = " ".join(parts[i : i + 3])
            if len(text.split()) >= 12:
                out.append((d.title or f"CISI {d.ident}", text))
    return out


def make_corpus(chunks: int, real: int, embedder: object, seed: int = 7) -> list[BulkDoc]:
    rng = np.random.default_rng(seed)
    pool = chunk_texts()
    rng.shuffle(pool)
    pool = pool[: min(real, len(pool))]
    vectors = embed_cached(embedder, [t for _, t in pool])
    n_docs = max(1, chunks // CHUNKS_PER_DOC)
    docs: list[BulkDoc] = []
    for i in range(n_docs):
        picks = rng.integers(0, len(pool), CHUNKS_PER_DOC)
        base = vectors[picks]
        if i * CHUNKS_PER_DOC >= len(pool):  # beyond the real ones: perturbed copies
            noise = rng.normal(scale=0.25 / np.sqrt(base.shape[1]), size=base.shape)
            base = base + noise.astype(np.float32)
            base /= np.linalg.norm(base, axis=1, keepdims=True)
        u = rng.random()
        if u < 0.05:
            collection = "corp/public"
        else:
            collection = COLLECTIONS[int(rng.integers(0, len(COLLECTIONS)))]
        acl = [f"group:team{int(rng.integers(0, TEAMS))}"]
        if rng.random() < 0.005:
            acl.append("group:tiny")
        docs.append(
            BulkDoc(
                id=uuid.uuid4(),
                title=pool[int(picks[0])][0],
                acl=acl,
                collection=collection,
                chunks=[pool[int(p)][1] for p in picks],
                vectors=base.astype(np.float32),
            )
        )
    return docs


def make_queries(n: int, seed: int = 11) -> list[str]:
    """``n`` distinct short queries cut from CISI sentences."""
    rng = np.random.default_rng(seed)
    words = [s.split() for d in cisi_documents() for s in sentences(d.text)]
    words = [w for w in words if len(w) >= 8]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        w = words[int(rng.integers(0, len(words)))]
        size = int(rng.integers(3, 9))
        start = int(rng.integers(0, len(w) - size + 1))
        text = " ".join(x.strip(".,;:()\"'") for x in w[start : start + size]).lower()
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


__all__ = [
    "CALLERS",
    "BenchCaller",
    "make_corpus",
    "make_queries",
    "policy_yaml",
]
