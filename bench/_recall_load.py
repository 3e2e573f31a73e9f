"""An embedded PostgreSQL holding the benchmark corpus, loaded the fast way, kept if asked.

The chunks' secondary indexes are dropped, the rows COPied in binary, and the indexes
rebuilt from their own definitions afterwards (HNSW with ``maintenance_work_mem`` sized for
the graph and parallel workers); the BM25 posting trigger is off during the COPY (the
keyword leg is not part of this benchmark, and its postings of "chunk i.j" would only cost
load time). ``documents`` and ``chunks`` are UNLOGGED: the load and the index builds write
no WAL (about 4 GB at a million chunks); reads, plans and index scans of an unlogged
table are those of a logged one. The vectors and metadata go into the COPY as ready-made
binary fields (one numpy conversion for all vectors, one JSON encoding per document)
instead of being adapted row by row. Load and index build are timed separately.

A kept database (``--keep DIR``) lives in ``DIR/<chunks>-<corpus digest>``; the digest
covers every vector and attribute of the generated corpus, so a changed generator never
reuses an old database. ``loaded.json`` in it records the build's timings and is written
only once the build finished; a directory without it (an interrupted build) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psycopg

from bench._recall_corpus import CHUNKS_PER_DOC, Corpus
from bench._recall_memory import PeakMemory

SOURCE = "bench"


@contextmanager
def scratch_server(
    prefix: str, memory: PeakMemory | None = None, keep: Path | None = None
) -> Iterator[str]:
    """A migrated database in a new embedded server under /tmp/<prefix>-*; removed after.

    With ``keep``, the server's home is that directory (created if missing) and it stays
    after the run. ``memory`` (if given) starts counting the server's processes."""
    from server.db import migrate
    from server.db.embedded import EmbeddedPostgres
    from server.db.engine import to_sqlalchemy_url

    if os.environ.get("BENCH_DATABASE_URL"):
        url = os.environ["BENCH_DATABASE_URL"]
        migrate.upgrade(to_sqlalchemy_url(url))
        yield url
        return
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    home = keep or Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    server = EmbeddedPostgres(home, "bench_recall")
    try:
        uri = server.start()
        if memory is not None:
            memory.pgdata = server.pgdata
        migrate.upgrade(to_sqlalchemy_url(uri))
        yield uri
    finally:
        server.stop()
        if keep is None:
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
    reused: bool = False  # True: built by an earlier run (these are its timings), kept


MARKER = "loaded.json"


def corpus_digest(corpus: Corpus) -> str:
    """A digest of everything the load writes (vectors, ids, attributes)."""
    h = hashlib.sha256(np.ascontiguousarray(corpus.vectors, dtype=np.float32).tobytes())
    for i, ident in enumerate(corpus.ids):
        h.update(ident.bytes)
        h.update(repr((corpus.acl[i], corpus.collection[i], corpus.path[i])).encode())
        h.update(json.dumps(corpus.metadata[i], sort_keys=True).encode())
    return h.hexdigest()[:16]


def kept_home(root: Path, corpus: Corpus, *, rebuild: bool) -> Path:
    """The kept database's directory for this corpus; emptied unless a finished build is
    there (or when ``rebuild``)."""
    home = root / f"{len(corpus.vectors)}-{corpus_digest(corpus)}"
    if home.exists() and (rebuild or not (home / MARKER).exists()):
        shutil.rmtree(home)
    return home


def reuse(dsn: str, home: Path, corpus: Corpus) -> LoadTimes | None:
    """The timings of the finished build kept in ``home``, if its rows are all there (an
    unlogged table is emptied when its server did not stop cleanly)."""
    marker = home / MARKER
    if not marker.exists():
        return None
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM chunks").fetchone()
    if row is None or int(row[0]) != len(corpus.vectors):
        return None
    return LoadTimes(**{**json.loads(marker.read_text()), "reused": True})


def remember(home: Path, loaded: LoadTimes) -> None:
    (home / MARKER).write_text(json.dumps(asdict(loaded), indent=1))


def _secondary_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " WHERE i.tablename = 'chunks' AND i.schemaname = current_schema()"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
    ).fetchall()
    return [(str(n), str(d)) for n, d in rows]


def copy_documents(conn: psycopg.Connection, corpus: Corpus) -> None:
    """COPY the corpus' documents (attributes only; the chunks carry the text)."""
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


def load(dsn: str, corpus: Corpus, maintenance_work_mem: str = "3GB") -> LoadTimes:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO sources (name, kind) VALUES (%s, 'files')", (SOURCE,))
        indexes = _secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        # chunks first: an unlogged table may reference a logged one, not the reverse.
        conn.execute("ALTER TABLE chunks SET UNLOGGED")
        conn.execute("ALTER TABLE documents SET UNLOGGED")
        conn.execute("ALTER TABLE chunks DISABLE TRIGGER kb_bm25_insert")
        t0 = time.perf_counter()
        copy_documents(conn, corpus)
        with conn.cursor().copy(
            "COPY chunks (document_id, ordinal, heading, text, embedding, source, collection,"
            " path, level, acl, content_type, doc_metadata) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            # embedding and doc_metadata are sent as ready-made binary fields ("bytea"
            # here only picks psycopg's pass-through dumper; a binary COPY carries no type
            # per field, the server reads them with vector_recv and jsonb_recv).
            copy.set_types(
                ["uuid", "int4", "text", "text", "bytea", "text", "text", "text", "int2",
                 "text[]", "text", "bytea"]
            )  # fmt: skip
            header = struct.pack(">HH", corpus.vectors.shape[1], 0)
            big_endian = np.asarray(corpus.vectors, dtype=">f4")
            for i, ident in enumerate(corpus.ids):
                meta = b"\x01" + json.dumps(corpus.metadata[i]).encode()  # jsonb version 1
                acl = list(corpus.acl[i])
                for j in range(CHUNKS_PER_DOC):
                    vector = header + big_endian[i * CHUNKS_PER_DOC + j].tobytes()
                    copy.write_row(
                        (ident, j, f"doc {i}", f"chunk {i}.{j}", vector, SOURCE,
                         corpus.collection[i], corpus.path[i], 0, acl, "text/plain", meta)
                    )  # fmt: skip
        conn.execute("ALTER TABLE chunks ENABLE TRIGGER kb_bm25_insert")
        conn.commit()
        copy_s = time.perf_counter() - t0

        # pgvector says so (a NOTICE) if the graph outgrows maintenance_work_mem mid-build.
        conn.add_notice_handler(lambda d: print(f"  postgres: {d.message_primary}", flush=True))
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
