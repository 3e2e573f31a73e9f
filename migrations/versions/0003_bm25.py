"""BM25 keyword index: identifier-aware terms, postings, term and corpus statistics

Everything lives in plain SQL and PL/pgSQL, so it runs on any Postgres (no extension
beyond pgvector, which 0001 already needs):

- ``kb_bm25_terms(text)``: the one tokeniser, used at ingestion (by the triggers below)
  and at query time (by the keyword leg), so both sides always agree. A token is a run
  of letters and digits joined by ``- _ . / @ : + #`` (``ERR-4031``, ``pg_dump``,
  ``v2.3.1``, ``a.b@example.com``). A compound token yields itself, lower-cased and
  unstemmed, plus each part; a CamelCase word yields itself plus its words; plain
  words and parts go through Postgres' built-in Snowball English stemmer
  (``english_stem``), which also drops English stop words.
- ``bm25_postings(term, chunk_id, tf, len)``: the inverted index; ``len`` (the chunk's
  length in terms) is copied into each posting so scoring never reads the chunk row.
- ``bm25_terms(term, df)`` and the one-row ``bm25_corpus(chunks, total_len)``: the
  statistics BM25 needs (document frequency, N, average length).

Statement-level triggers on ``chunks`` (transition tables) keep all three exact for
every writer: the pipeline's COPY, deletes, ON DELETE CASCADE from documents and
sources, updates of the text, TRUNCATE. Writers serialise on one transaction-level
advisory lock from their first chunk write to commit: the statistics rows are shared,
and without one lock order two ingest transactions that each insert and delete chunks
could deadlock on them.

Revision ID: 0003_bm25
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_bm25"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Any constant works; it only has to be the same in every trigger.
LOCK_KEY = 7_326_100_251

TOKENISER = r"""
-- A word is stemmed (and dropped if it is a stop word); '' stands for "no term".
CREATE FUNCTION kb_bm25_stem(word text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce((ts_lexize('english_stem', lower(word)))[1], '')
$$;

-- The terms of one token (see the module docstring); one row per term occurrence.
CREATE FUNCTION kb_bm25_token_terms(token text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH parts AS (
        SELECT part, n
        FROM regexp_split_to_table(token, '[-_./@:+#]') WITH ORDINALITY AS s(part, n)
    ),
    words AS (
        -- CamelCase and ACRONYMWord boundaries inside each part.
        SELECT p.n, w.word
        FROM parts p,
             regexp_split_to_table(
                 regexp_replace(
                     regexp_replace(p.part, '([[:lower:][:digit:]])([[:upper:]])', '\1 \2', 'g'),
                     '([[:upper:]]{2,})([[:upper:]][[:lower:]])', '\1 \2', 'g'),
                 ' ') AS w(word)
    ),
    shape AS (
        SELECT (SELECT count(*) FROM parts) AS n_parts, (SELECT count(*) FROM words) AS n_words
    )
    -- The whole token, when it is more than one word.
    SELECT lower(token) FROM shape WHERE n_words > 1 AND length(token) <= 64
    UNION ALL
    -- A part that is CamelCase inside a compound (PaymentGateway in PaymentGateway.charge).
    SELECT lower(p.part) FROM parts p, shape
    WHERE n_parts > 1 AND (SELECT count(*) FROM words w WHERE w.n = p.n) > 1
    UNION ALL
    -- Every word, stemmed; stop words drop out.
    SELECT t FROM (SELECT kb_bm25_stem(word) AS t FROM words WHERE word <> '') x WHERE t <> ''
$$;

-- Most tokens are plain words: they skip the split and go straight to the stemmer.
CREATE FUNCTION kb_bm25_terms(doc text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT x.t
    FROM regexp_matches(doc, '[[:alnum:]]+(?:[-_./@:+#][[:alnum:]]+)*', 'g') AS m,
         LATERAL (
             SELECT kb_bm25_stem(m[1]) AS t
             WHERE m[1] !~ '[-_./@:+#]|[[:lower:][:digit:]][[:upper:]]|[[:upper:]]{3}[[:lower:]]'
             UNION ALL
             SELECT kb_bm25_token_terms(m[1])
             WHERE m[1] ~ '[-_./@:+#]|[[:lower:][:digit:]][[:upper:]]|[[:upper:]]{3}[[:lower:]]'
         ) AS x
    WHERE x.t <> ''
$$;
"""

TABLES = """
CREATE TABLE bm25_postings (
    term text NOT NULL,
    chunk_id bigint NOT NULL,
    tf integer NOT NULL,
    len integer NOT NULL,
    CONSTRAINT pk_bm25_postings PRIMARY KEY (term, chunk_id) INCLUDE (tf, len)
);
CREATE INDEX ix_bm25_postings_chunk_id ON bm25_postings (chunk_id);
CREATE TABLE bm25_terms (
    term text NOT NULL,
    df integer NOT NULL,
    CONSTRAINT pk_bm25_terms PRIMARY KEY (term)
);
CREATE TABLE bm25_corpus (
    id boolean DEFAULT true NOT NULL,
    chunks bigint NOT NULL,
    total_len bigint NOT NULL,
    CONSTRAINT pk_bm25_corpus PRIMARY KEY (id),
    CONSTRAINT ck_bm25_corpus_one_row CHECK (id)
);
INSERT INTO bm25_corpus (id, chunks, total_len) VALUES (true, 0, 0);
-- Every chunk query checks that its document is not soft-deleted; without this index that
-- check scans all documents (28 ms at 100,000) on every search, in both legs.
CREATE INDEX ix_documents_deleted ON documents (id) WHERE deleted_at IS NOT NULL;
"""

MAINTENANCE = f"""
-- Index chunks (ids with their heading + text); statistics move by exactly what was added.
-- One statement with data-modifying CTEs: no temporary tables, no catalog churn.
CREATE FUNCTION kb_bm25_add(ids bigint[], docs text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    WITH t AS MATERIALIZED (
        SELECT x.term, d.id, count(*)::int AS tf
        FROM unnest(ids, docs) AS d(id, doc), kb_bm25_terms(d.doc) AS x(term)
        GROUP BY x.term, d.id
    ),
    l AS (SELECT id, sum(tf)::int AS len FROM t GROUP BY id),
    posted AS (
        INSERT INTO bm25_postings (term, chunk_id, tf, len)
        SELECT t.term, t.id, t.tf, l.len FROM t JOIN l USING (id)
    ),
    counted AS (
        -- Sorted, so concurrent writers (already serialised by the lock) never interleave.
        INSERT INTO bm25_terms AS s (term, df)
        SELECT term, count(*) FROM t GROUP BY term ORDER BY term
        ON CONFLICT (term) DO UPDATE SET df = s.df + excluded.df
    )
    UPDATE bm25_corpus SET
        chunks = chunks + cardinality(ids),
        total_len = total_len + coalesce((SELECT sum(len) FROM l), 0);
END;
$$;

-- Forget chunks; statistics move by exactly what their postings held.
CREATE FUNCTION kb_bm25_remove(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    emptied text[];
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    WITH gone AS (
        DELETE FROM bm25_postings p WHERE p.chunk_id = ANY(ids)
        RETURNING p.term, p.chunk_id, p.len
    ),
    counted AS (
        UPDATE bm25_terms s SET df = s.df - g.n
        FROM (SELECT term, count(*) AS n FROM gone GROUP BY term) g
        WHERE s.term = g.term
        RETURNING s.term, s.df
    ),
    corpus AS (
        UPDATE bm25_corpus SET
            chunks = chunks - cardinality(ids),
            total_len = total_len - coalesce(
                (SELECT sum(len) FROM (SELECT DISTINCT chunk_id, len FROM gone) c), 0)
        RETURNING 1
    )
    SELECT array_agg(term) FILTER (WHERE df <= 0) INTO emptied
    FROM counted, (SELECT count(*) FROM corpus) AS done;
    IF emptied IS NOT NULL THEN
        DELETE FROM bm25_terms WHERE term = ANY(emptied) AND df <= 0;
    END IF;
END;
$$;

CREATE FUNCTION kb_bm25_chunks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kb_bm25_add(array_agg(id), array_agg(heading || ' ' || text))
    FROM new_chunks HAVING count(*) > 0;
    RETURN NULL;
END;
$$;

CREATE FUNCTION kb_bm25_chunks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kb_bm25_remove(array_agg(id)) FROM old_chunks HAVING count(*) > 0;
    RETURN NULL;
END;
$$;

-- Ingestion replaces chunks (delete + insert); this keeps any other writer honest.
CREATE FUNCTION kb_bm25_chunks_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed bigint[];
BEGIN
    SELECT array_agg(n.id) INTO changed
    FROM new_chunks n JOIN old_chunks o ON o.id = n.id
    WHERE (n.heading, n.text) IS DISTINCT FROM (o.heading, o.text);
    IF changed IS NOT NULL THEN
        PERFORM kb_bm25_remove(changed);
        PERFORM kb_bm25_add(array_agg(id), array_agg(heading || ' ' || text))
        FROM new_chunks WHERE id = ANY(changed);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION kb_bm25_chunks_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    TRUNCATE bm25_postings, bm25_terms;
    UPDATE bm25_corpus SET chunks = 0, total_len = 0;
    RETURN NULL;
END;
$$;

CREATE TRIGGER kb_bm25_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_chunks_inserted();
CREATE TRIGGER kb_bm25_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_chunks_deleted();
CREATE TRIGGER kb_bm25_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_chunks_updated();
CREATE TRIGGER kb_bm25_truncate AFTER TRUNCATE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION kb_bm25_chunks_truncated();
"""

# Existing chunks, in batches so a large corpus does not build one huge array.
BACKFILL = """
DO $$
DECLARE
    lo bigint := 0;
    hi bigint;
BEGIN
    LOOP
        SELECT max(id) INTO hi FROM (
            SELECT id FROM chunks WHERE id > lo ORDER BY id LIMIT 2000
        ) b;
        EXIT WHEN hi IS NULL;
        PERFORM kb_bm25_add(array_agg(id ORDER BY id), array_agg(heading || ' ' || text ORDER BY id))
        FROM chunks WHERE id > lo AND id <= hi;
        lo := hi;
    END LOOP;
END $$;
"""

DROP = """
DROP TRIGGER IF EXISTS kb_bm25_truncate ON chunks;
DROP TRIGGER IF EXISTS kb_bm25_update ON chunks;
DROP TRIGGER IF EXISTS kb_bm25_delete ON chunks;
DROP TRIGGER IF EXISTS kb_bm25_insert ON chunks;
DROP FUNCTION IF EXISTS kb_bm25_chunks_truncated();
DROP FUNCTION IF EXISTS kb_bm25_chunks_updated();
DROP FUNCTION IF EXISTS kb_bm25_chunks_deleted();
DROP FUNCTION IF EXISTS kb_bm25_chunks_inserted();
DROP FUNCTION IF EXISTS kb_bm25_remove(bigint[]);
DROP FUNCTION IF EXISTS kb_bm25_add(bigint[], text[]);
DROP INDEX IF EXISTS ix_documents_deleted;
DROP TABLE IF EXISTS bm25_corpus;
DROP TABLE IF EXISTS bm25_terms;
DROP TABLE IF EXISTS bm25_postings;
DROP FUNCTION IF EXISTS kb_bm25_terms(text);
DROP FUNCTION IF EXISTS kb_bm25_token_terms(text);
DROP FUNCTION IF EXISTS kb_bm25_stem(text);
"""


def upgrade() -> None:
    op.execute(TOKENISER)
    op.execute(TABLES)
    op.execute(MAINTENANCE)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute(DROP)
