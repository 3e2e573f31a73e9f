"""A throw-away embedded PostgreSQL holding the benchmark corpus, loaded the fast way.

The chunks' secondary indexes are dropped, the rows COPied in binary, and the indexes
rebuilt from their own definitions afterwards (HNSW with ``maintenance_work_mem`` sized for
the graph and parallel workers); the BM25 posting trigger is off during the COPY (the
keyword leg is not part of this benchmark, and its postings of "chunk i.j" would only cost
load time). Load and index build are timed separately.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from bench._recall_corpus import CHUNKS_PER_DOC, Corpus
from bench._recall_memory import PeakMemory

SOURCE = "bench"


@contextmanager
def scratch_server(prefix: str, memory: PeakMemory | None = None) -> Iterator[str]:
    """A migrated database in a new embedded server under /tmp/<prefix>-*; removed after.

    ``memory`` (if given) starts counting the server's processes."""
    from server.db import migrate
    from server.db.embedded import EmbeddedPostgres
    from server.db.engine import to_sqlalchemy_url

    if os.environ.get("BENCH_DATABASE_URL"):
        url = os.environ["BENCH_DATABASE_URL"]
        migrate.upgrade(to_sqlalchemy_url(url))
        yield url
        return
    home = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    server = EmbeddedPostgres(home, "bench_recall")
    try:
        uri = server.start()
        if memory is not None:
            memory.pgdata = server.pgdata
        migrate.upgrade(to_sqlalchemy_url(uri))
        yield uri
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class LoadTimes:
    copy_s: float
    hnsw_s: float
    other_indexes_s: float
    maintenance_work_mem: str
    table_mb: float
    hnsw_mb: float
    versions: str


def _secondary_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " WHERE i.tablename = 'chunks' AND i.schemaname = current_schema()"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
    ).fetchall()
    return [(str(n), str(d)) for n, d in rows]


def load(dsn: str, corpus: Corpus, maintenance_work_mem: str = "3GB") -> LoadTimes:
    from pgvector.psycopg import register_vector

    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute("INSERT INTO sources (name, kind) VALUES (%s, 'files')", (SOURCE,))
        indexes = _secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("ALTER TABLE chunks DISABLE TRIGGER kb_bm25_insert")
        t0 = time.perf_counter()
        with conn.cursor().copy(
            "COPY documents (id, source, external_id, uri, title, content_type, content_hash,"
            " content, metadata, collection, path, acl) FROM STDIN"
        ) as copy:
            for i, ident in enumerate(corpus.ids):
                copy.write_row(
                    (ident, SOURCE, str(ident), f"bench://{ident}", f"doc {i}", "text/plain",
                     ident.hex, "", json.dumps(corpus.metadata[i]), corpus.collection[i],
                     corpus.path[i], list(corpus.acl[i]))
                )  # fmt: skip
        with conn.cursor().copy(
            "COPY chunks (document_id, ordinal, heading, text, embedding, source, collection,"
            " path, level, acl, content_type, doc_metadata) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["uuid", "int4", "text", "text", "vector", "text", "text", "text", "int2",
                 "text[]", "text", "jsonb"]
            )  # fmt: skip
            vectors = np.asarray(corpus.vectors, dtype=np.float32)
            for i, ident in enumerate(corpus.ids):
                meta = Jsonb(corpus.metadata[i])
                acl = list(corpus.acl[i])
                for j in range(CHUNKS_PER_DOC):
                    copy.write_row(
                        (ident, j, f"doc {i}", f"chunk {i}.{j}", vectors[i * CHUNKS_PER_DOC + j],
                         SOURCE, corpus.collection[i], corpus.path[i], 0, acl, "text/plain", meta)
                    )  # fmt: skip
        conn.execute("ALTER TABLE chunks ENABLE TRIGGER kb_bm25_insert")
        conn.commit()
        copy_s = time.perf_counter() - t0

        conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        hnsw_s = other_s = 0.0
        for name, definition in indexes:
            t0 = time.perf_counter()
            conn.execute(definition)
            conn.commit()
            took = time.perf_counter() - t0
            print(f"  index {name}: {took:.0f} s", flush=True)
            if "hnsw" in definition:
                hnsw_s += took
            else:
                other_s += took
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE documents")
        conn.execute("VACUUM ANALYZE chunks")
        sizes = conn.execute(
            "SELECT pg_table_size('chunks'), pg_relation_size('ix_chunks_embedding_hnsw')"
        ).fetchone()
        assert sizes is not None
        pg = conn.execute("SHOW server_version").fetchone()
        vec = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        versions = f"PostgreSQL {pg[0] if pg else '?'} + pgvector {vec[0] if vec else '?'}"
    return LoadTimes(
        copy_s, hnsw_s, other_s, maintenance_work_mem, sizes[0] / 2**20, sizes[1] / 2**20, versions
    )


def chunk_rows(dsn: str, corpus: Corpus) -> np.ndarray:
    """Database chunk id of every corpus chunk row (row 4i+j = document i, ordinal j)."""
    index = {ident: i for i, ident in enumerate(corpus.ids)}
    out = np.full(corpus.n_docs * CHUNKS_PER_DOC, -1, dtype=np.int64)
    with psycopg.connect(dsn) as conn, conn.cursor("ids") as cur:
        cur.execute("SELECT document_id, ordinal, id FROM chunks")
        for doc, ordinal, ident in cur:
            out[index[doc] * CHUNKS_PER_DOC + ordinal] = ident
    assert (out >= 0).all(), "a corpus chunk is missing from the database"
    return out
