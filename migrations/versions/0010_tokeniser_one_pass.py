"""The BM25 tokeniser tests each token's shape once and stems plain words directly

``kb_bm25_terms`` (migration 0003) ran, for every token, a LATERAL subquery with two
branches, each testing the token's shape with the same regular expression, and stemmed
plain words through ``kb_bm25_stem`` (a SQL function around ``ts_lexize``). The chunk
insert trigger runs it over every chunk written, so it was most of what PostgreSQL spends
on an ingest: in ``python -m bench ingest`` (1,329 chunks of generated text) the
database's CPU went from 5.0 s to 2.2 s with the insert trigger dropped, against 1.1 s for
the HNSW entries (measured by dropping each in turn on session 8's machine).

Here the shape is tested once per token; plain words go to ``ts_lexize`` in one set-wide
branch, compound and CamelCase tokens to ``kb_bm25_token_terms`` as before. Same terms,
same counts (``tests/db/test_tokeniser_one_pass.py`` compares it with 0003's definition on
CISI and generated hostile text); only their order within one text may differ, which no
caller reads (postings and query weights group by term, matched words take distinct
terms). 176,000 tokens of generated text: 1.23-1.40 s -> 0.60 s. ``bench ingest``,
alternated twice with 0003's definition: PostgreSQL's CPU 5.3 / 5.5 -> 4.2 / 4.0 s per
1,329 chunks, end to end 27.9 / 28.0 -> 27.5 / 25.6 s.

Revision ID: 0010_tokeniser_one_pass
Revises: 0009_listing_index
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_tokeniser_one_pass"
down_revision: str | None = "0009_listing_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The token pattern and the shape test are 0003's, character for character.
SHAPE_TESTED_ONCE = r"""
CREATE OR REPLACE FUNCTION kb_bm25_terms(doc text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 10 AS $$
    WITH tokens AS (
        SELECT m[1] AS token,
               m[1] ~ '[-_./@:+#]|[[:lower:][:digit:]][[:upper:]]|[[:upper:]]{3}[[:lower:]]'
                   AS compound
        FROM regexp_matches(doc, '[[:alnum:]]+(?:[-_./@:+#][[:alnum:]]+)*', 'g') AS m
    )
    SELECT t FROM (
        -- kb_bm25_stem inlined: a stop word's empty lexeme array gives NULL, dropped below.
        SELECT (ts_lexize('english_stem', lower(token)))[1] AS t FROM tokens WHERE NOT compound
        UNION ALL
        SELECT kb_bm25_token_terms(token) FROM tokens WHERE compound
    ) x
    WHERE t <> ''
$$;
"""

# 0003's definition (with 0008's row estimate), for downgrade.
SHAPE_TESTED_TWICE = r"""
CREATE OR REPLACE FUNCTION kb_bm25_terms(doc text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 10 AS $$
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


def upgrade() -> None:
    op.execute(SHAPE_TESTED_ONCE)


def downgrade() -> None:
    op.execute(SHAPE_TESTED_TWICE)
