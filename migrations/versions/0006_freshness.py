"""Freshness: authorization-only updates and watched sources

* ``documents.text_hash``: the digest of what is chunked and embedded (title, type,
  sections), apart from ``content_hash`` (everything stored): a change of ACL, collection,
  path, level or metadata updates the document and its chunks' columns in place, keeping
  chunk ids and vectors. NULL for documents stored before this revision (filled in the
  next time each is read unchanged).
* ``documents.base_metadata``: the metadata before a sidecar's or rule's is merged in, so
  a sidecar change applies without re-reading the file. NULL when the connector does not
  separate the two.
* ``ingest_runs.acl_updated``: documents whose authorization changed without new text.
* ``source_freshness``: per source, the watcher holding it, its last poll, the last change
  seen and how long that change took to become searchable.

Revision ID: 0006_freshness
Revises: 0005_audit_request_id
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_freshness"
down_revision: str | None = "0005_audit_request_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("text_hash", sa.Text(), nullable=True))
    op.add_column(
        "documents",
        sa.Column("base_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "ingest_runs",
        sa.Column("acl_updated", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_table(
        "source_freshness",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("watcher", sa.Text(), nullable=True),
        sa.Column("watcher_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_change_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_searchable_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_lag_ms", sa.Double(), nullable=True),
        sa.Column("last_full_scan_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["source"],
            ["sources.name"],
            name="fk_source_freshness_source_sources",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source", name="pk_source_freshness"),
    )


def downgrade() -> None:
    op.drop_table("source_freshness")
    op.drop_column("ingest_runs", "acl_updated")
    op.drop_column("documents", "base_metadata")
    op.drop_column("documents", "text_hash")
