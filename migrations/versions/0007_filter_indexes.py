"""Indexes for the access predicate's metadata conditions and prefix rules on documents

A policy rule with a ``metadata.KEY`` condition compiles to JSONB containment
(``doc_metadata @> '{"KEY": "value"}'``), which had no index: a restrictive caller whose
rules carry one scanned the whole chunk table (bench search_recall: 0.3-0.8 s at 100,000
chunks, seconds at a million). A ``jsonb_path_ops`` GIN index answers containment and is
small (it indexes value paths only). Documents get the same, plus ``text_pattern_ops``
indexes for collection and path prefixes, which ``list_sources`` and the counts filter by
(the chunk table had them since 0001; documents did not).

Revision ID: 0007_filter_indexes
Revises: 0006_freshness
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_filter_indexes"
down_revision: str | None = "0006_freshness"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_chunks_doc_metadata",
        "chunks",
        ["doc_metadata"],
        postgresql_using="gin",
        postgresql_ops={"doc_metadata": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_documents_metadata",
        "documents",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_documents_collection_prefix",
        "documents",
        ["collection"],
        postgresql_ops={"collection": "text_pattern_ops"},
    )
    op.create_index(
        "ix_documents_path_prefix",
        "documents",
        ["path"],
        postgresql_ops={"path": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_documents_path_prefix", table_name="documents")
    op.drop_index("ix_documents_collection_prefix", table_name="documents")
    op.drop_index("ix_documents_metadata", table_name="documents")
    op.drop_index("ix_chunks_doc_metadata", table_name="chunks")
