"""Shared by the search benchmarks: a scratch database, the CISI collection, bulk loading,
and writing one section of docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
CISI_DIR = Path(os.environ.get("KB_CISI_DIR", ROOT.parent / "shared" / "datasets" / "cisi"))
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
IMG_DIR = ROOT / "docs" / "img"


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A migrated database in a throw-away embedded Postgres (or in BENCH_DATABASE_URL)."""
    from server.db import migrate
    from server.db.embedded import EmbeddedPostgres
    from server.db.engine import to_sqlalchemy_url

    if os.environ.get("BENCH_DATABASE_URL"):
        url = os.environ["BENCH_DATABASE_URL"]
        migrate.upgrade(to_sqlalchemy_url(url))
        yield url
        return
    home = Path(tempfile.mkdtemp(prefix=f"kb-bench-{name}-"))
    server = EmbeddedPostgres(home, name)
    try:
        uri = server.start()
        migrate.upgrade(to_sqlalchemy_url(uri))
        yield uri
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- CISI
@dataclass
class CisiRecord:
    ident: int
    title: str = ""
    text: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def _records(path: Path) -> list[CisiRecord]:
    records: list[CisiRecord] = []
    current: CisiRecord | None = None
    key = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\.([A-Z])(?:\s+(\d+))?\s*$", line)
        if m and m.group(1) == "I":
            current = CisiRecord(int(m.group(2)))
            records.append(current)
            key = ""
        elif m:
            key = m.group(1)
        elif current is not None and key:
            current.fields[key] = (current.fields.get(key, "") + " " + line.strip()).strip()
    for r in records:
        r.title = r.fields.get("T", "")
        r.text = r.fields.get("W", "")
    return records


def cisi_documents() -> list[CisiRecord]:
    return _records(CISI_DIR / "CISI.ALL")


def cisi_queries() -> list[CisiRecord]:
    return _records(CISI_DIR / "CISI.QRY")


def cisi_judgements() -> dict[int, set[int]]:
    rel: dict[int, set[int]] = {}
    for line in (CISI_DIR / "CISI.REL").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            rel.setdefault(int(parts[0]), set()).add(int(parts[1]))
    return rel


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split()))
    return [p for p in parts if len(p.split()) >= 5]


# --------------------------------------------------------------------------- loading
@dataclass
class BulkDoc:
    id: uuid.UUID
    title: str
    acl: list[str]
    collection: str
    chunks: list[str]
    vectors: np.ndarray  # (len(chunks), dims)
    source: str = "bench"
    content_type: str = "text/plain"
    metadata: dict[str, Any] = field(default_factory=dict)


def bulk_load(dsn: str, docs: Sequence[BulkDoc], *, rebuild_index: bool = True) -> float:
    """COPY documents and chunks in; build the HNSW index afterwards (much faster).

    Returns the seconds the index build took."""
    import time

    from pgvector.psycopg import register_vector

    index_s = 0.0
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute(
            "INSERT INTO sources (name, kind) VALUES ('bench', 'files') ON CONFLICT DO NOTHING"
        )
        if rebuild_index:
            conn.execute("DROP INDEX IF EXISTS ix_chunks_embedding_hnsw")
        with conn.cursor().copy(
            "COPY documents (id, source, external_id, uri, title, content_type, content_hash,"
            " content, metadata, collection, acl) FROM STDIN"
        ) as copy:
            for d in docs:
                copy.write_row(
                    (
                        d.id,
                        d.source,
                        str(d.id),
                        f"bench://{d.id}",
                        d.title,
                        d.content_type,
                        d.id.hex,
                        "\n\n".join(d.chunks),
                        json.dumps(d.metadata),
                        d.collection,
                        d.acl,
                    )
                )
        with conn.cursor().copy(
            "COPY chunks (document_id, ordinal, heading, text, embedding, source, collection,"
            " path, level, acl, content_type, doc_metadata) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["uuid", "int4", "text", "text", "vector", "text", "text", "text", "int2",
                 "text[]", "text", "jsonb"]
            )  # fmt: skip
            for d in docs:
                # Jsonb, not json.dumps: a str in a binary COPY to jsonb is stored as a JSON
                # string, and metadata conditions (containment) would never match it.
                meta = Jsonb(d.metadata)
                for i, (text, vec) in enumerate(zip(d.chunks, d.vectors, strict=True)):
                    copy.write_row(
                        (d.id, i, d.title, text, np.asarray(vec, dtype=np.float32), d.source,
                         d.collection, "", 0, d.acl, d.content_type, meta)
                    )  # fmt: skip
        conn.commit()
        if rebuild_index:
            t0 = time.perf_counter()
            conn.execute("SET maintenance_work_mem = '1GB'")
            conn.execute(
                "CREATE INDEX ix_chunks_embedding_hnsw ON chunks USING hnsw"
                " (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
            index_s = time.perf_counter() - t0
        conn.commit()
        # What autovacuum does soon after a bulk load: statistics for every table (the
        # BM25 postings too) and the visibility map, so the searches measured use the
        # index-only scans a settled database gets, not the bitmap heap scans of a
        # freshly loaded one.
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return index_s


# --------------------------------------------------------------------------- reporting
def write_section(heading: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the ``## heading`` section of docs/benchmarks.md, nothing else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text.rstrip("\n") + "\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


CACHE_DIR = Path(os.environ.get("KB_BENCH_CACHE", Path(tempfile.gettempdir()) / "kb-bench-cache"))


def embed_cached(embedder: Any, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
    """Embed ``texts``, reusing an earlier run's vectors for the same model and texts."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(f"{embedder.name}|{query}|".encode())
    for t in texts:
        digest.update(t.encode() + b"\x00")
    path = CACHE_DIR / f"{digest.hexdigest()[:24]}.npy"
    if path.exists():
        loaded: np.ndarray = np.load(path)
        return loaded
    if query:
        vectors = np.asarray([embedder.embed_query(t) for t in texts], dtype=np.float32)
    else:
        vectors = np.asarray(embedder.embed_documents(list(texts)), dtype=np.float32)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def load_embedder() -> Any:
    from server.embeddings import load_embedder as load
    from server.settings import EmbeddingSettings

    return load(EmbeddingSettings())


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")
