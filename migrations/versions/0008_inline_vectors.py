"""Vectors stored inline in the chunk row; the tokeniser's row estimate for the planner

**Inline vectors.** A chunk row (384-dimension vector of 1,540 bytes, text, tsvector,
authorization columns) is about 2.8 kB, over PostgreSQL's 2 kB TOAST target, and
pgvector's type defaults to ``EXTERNAL`` storage, so the toaster moved the *vector* out of
line: every exact scan and every distance the executor recomputes fetched it through the
TOAST index, one lookup per row. Measured on the 20,000-chunk throughput corpus (a team
member's allowed set of 3,456 chunks, exact scan): 24,022 buffer hits and 81 ms before,
1,443 hits and 31 ms with ``PLAIN`` storage (same load). ``PLAIN`` keeps the vector in
the heap tuple; the text and tsvector, which only hydration and phrase checks read, are
the ones compressed or moved out of line instead. pgvector's documentation suggests the
same for exact search.

``SET STORAGE`` applies to rows written afterwards. Rows written before keep their
out-of-line vectors until rewritten: re-ingestion does it, or ``VACUUM FULL chunks`` (which
re-toasts every row and rebuilds the indexes, HNSW included: minutes per million chunks,
with the table locked) at a quiet time. Search is correct either way; only its speed
differs.

**Planner estimate of the tokeniser.** ``kb_bm25_terms`` is a set-returning SQL function;
without a ``ROWS`` estimate the planner assumes 1,000 terms per query and joins them to
the whole term table with a sort-merge or a hash instead of one primary-key lookup per
term (seen in ``python -m bench search_profile``: a sequential scan and sort of every term
for each search). A query or a chunk's word yields a handful of terms.

Revision ID: 0008_inline_vectors
Revises: 0007_filter_indexes
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_inline_vectors"
down_revision: str | None = "0007_filter_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN")
    op.execute("ALTER FUNCTION kb_bm25_terms(text) ROWS 10")
    op.execute("ALTER FUNCTION kb_bm25_token_terms(text) ROWS 4")


def downgrade() -> None:
    op.execute("ALTER FUNCTION kb_bm25_token_terms(text) ROWS 1000")
    op.execute("ALTER FUNCTION kb_bm25_terms(text) ROWS 1000")
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTERNAL")
