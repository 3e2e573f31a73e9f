"""Migration 0008: chunk vectors stay in the heap row; the tokeniser has a small row estimate.

A chunk row is larger than the 2 kB TOAST target. With pgvector's default ``EXTERNAL``
storage the toaster moved the vector out of line, so every exact scan fetched each vector
through the TOAST index. ``pg_column_toast_chunk_id`` is NULL exactly when a value is
stored in the row itself.
"""

from __future__ import annotations

import uuid

import psycopg
from pgvector.psycopg import register_vector


def _insert_large_chunk(conn: psycopg.Connection) -> None:
    doc = uuid.uuid4()
    conn.execute(
        "INSERT INTO sources (name, kind) VALUES ('inline', 'files') ON CONFLICT DO NOTHING"
    )
    conn.execute(
        "INSERT INTO documents (id, source, external_id, uri, title, content_type,"
        " content_hash, collection, acl) VALUES (%s, 'inline', %s, 'file:///x', 'x',"
        " 'text/plain', 'h', 'corp', '{}')",
        (doc, str(doc)),
    )
    # Incompressible text (distinct words), so the row cannot shrink under 2 kB by
    # compression alone and the toaster has to move something out of line.
    text = " ".join(uuid.uuid4().hex for _ in range(120))
    conn.execute(
        "INSERT INTO chunks (document_id, ordinal, text, embedding, source, collection,"
        " path, level, acl, content_type) VALUES (%s, 0, %s, %s, 'inline', 'corp', 'x', 0,"
        " '{}', 'text/plain')",
        (doc, text, [0.05] * 384),
    )


def test_vectors_of_large_rows_stay_in_the_row(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        register_vector(conn)
        _insert_large_chunk(conn)
        storage, vector_external, text_external = conn.execute(
            "SELECT (SELECT attstorage FROM pg_attribute"
            "         WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'),"
            " pg_column_toast_chunk_id(embedding) IS NOT NULL,"
            " pg_column_toast_chunk_id(text) IS NOT NULL"
            " FROM chunks WHERE source = 'inline'"
        ).fetchone() or (None, None, None)
    assert storage == "p"
    assert not vector_external, "the vector was moved to the TOAST table"
    # The row did need toasting: it was the text that went out of line.
    assert text_external


def _term_plan(conn: psycopg.Connection) -> str:
    return "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN SELECT t.df FROM kb_bm25_terms('survey of libraries') AS q(term)"
            " JOIN bm25_terms t USING (term)"
        )
    )


def test_the_tokeniser_promises_a_few_rows(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        rows: dict[str, float] = dict(
            conn.execute(
                "SELECT proname, prorows FROM pg_proc"
                " WHERE proname IN ('kb_bm25_terms', 'kb_bm25_token_terms')"
            ).fetchall()
        )
        # A vocabulary of some size, so that scanning it costs the planner something.
        conn.execute(
            "INSERT INTO bm25_terms (term, df) SELECT 'w' || i, 1 FROM generate_series(1, 20000) i"
        )
        conn.execute("ANALYZE bm25_terms")
        plan = _term_plan(conn)
        # The control: with the default estimate (1,000 rows) the same join scans the table.
        conn.execute("ALTER FUNCTION kb_bm25_terms(text) ROWS 1000")
        default_plan = _term_plan(conn)
        conn.rollback()
    assert rows == {"kb_bm25_terms": 10, "kb_bm25_token_terms": 4}
    # A handful of terms: one primary-key probe each, not a scan of the term table.
    assert "pk_bm25_terms" in plan and "Seq Scan on bm25_terms" not in plan, plan
    assert "Seq Scan on bm25_terms" in default_plan, default_plan
