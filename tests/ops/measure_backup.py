"""Time and size of `kb backup` / `kb restore` on a larger database (not a test).

``python -m tests.ops.measure_backup --docs 2000 --chunks-per-doc 10`` builds a scratch
embedded PostgreSQL, migrates it, fills it with documents and chunks (150-word texts from a
fixed vocabulary and random unit vectors: the dump does not care whether embeddings came
from the model, and the BM25 triggers index the texts as ingestion would), then runs the
real `kb backup` and `kb restore` (into an empty second database) and prints one line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

from server.db import migrate
from server.db.embedded import EmbeddedPostgres
from server.db.engine import to_sqlalchemy_url

KB = str(Path(sys.executable).parent / "kb")


def fill(dsn: str, docs: int, per_doc: int) -> None:
    rng = np.random.default_rng(7)
    vocabulary = [f"w{i}" for i in range(5000)]
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO sources (name, kind, config) VALUES ('bulk', 'files', '{}')")
        ids = [uuid.uuid4() for _ in range(docs)]
        with conn.cursor().copy(
            "COPY documents (id, source, external_id, uri, title, content_type, content_hash,"
            " content, collection, path, level, acl) FROM STDIN"
        ) as copy:
            for i, doc in enumerate(ids):
                copy.write_row(
                    (
                        doc,
                        "bulk",
                        str(doc),
                        f"file:///{i}",
                        f"doc {i}",
                        "text/plain",
                        doc.hex,
                        "",
                        "bulk",
                        f"/{i}",
                        0,
                        ["group:all"],
                    )
                )
        with conn.cursor().copy(
            "COPY chunks (document_id, ordinal, text, token_count, embedding, source,"
            " collection, path, level, acl, content_type) FROM STDIN"
        ) as copy:
            for doc in ids:
                vectors = rng.normal(size=(per_doc, 384))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for n in range(per_doc):
                    words = rng.choice(vocabulary, size=150)
                    vec = "[" + ",".join(f"{x:.7f}" for x in vectors[n]) + "]"
                    copy.write_row(
                        (
                            doc,
                            n,
                            " ".join(words),
                            150,
                            vec,
                            "bulk",
                            "bulk",
                            "/",
                            0,
                            ["group:all"],
                            "text/plain",
                        )
                    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--chunks-per-doc", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-measure-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", "source")
        dsn = server.start()
        try:
            migrate.upgrade(to_sqlalchemy_url(dsn))
            started = time.perf_counter()
            fill(dsn, args.docs, args.chunks_per_doc)
            filled = time.perf_counter() - started
            with psycopg.connect(server.admin_uri, autocommit=True) as conn:
                conn.execute("CREATE DATABASE target")
                size = conn.execute("SELECT pg_database_size('source')").fetchone()
            env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
            file = Path(tmp) / "kb.kbk"
            timings = []
            for database, command in (("source", "backup"), ("target", "restore")):
                env.update(DATABASE_URL=server.uri(database), KB_HOME=str(Path(tmp) / database))
                t0 = time.perf_counter()
                subprocess.run([KB, command, str(file)], env=env, check=True, capture_output=True)
                timings.append(time.perf_counter() - t0)
            db_mb = (size[0] if size else 0) / 1e6
            print(
                f"{args.docs} documents, {args.docs * args.chunks_per_doc} chunks "
                f"(filled in {filled:.0f} s; database {db_mb:.0f} MB): "
                f"kb backup {timings[0]:.1f} s, file {file.stat().st_size / 1e6:.1f} MB; "
                f"kb restore {timings[1]:.1f} s (row counts checked)"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
