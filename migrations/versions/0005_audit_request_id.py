"""Audit rows carry the request id that the structured logs print

A log line and the audit row of the same MCP or REST request share one id, so an operator
can go from a log line to who asked and what they were given, and back. Nullable: rows
written before this revision, and CLI actions with no request, have none.

Revision ID: 0005_audit_request_id
Revises: 0004_runtime_role
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_audit_request_id"
down_revision: str | None = "0004_runtime_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("request_id", sa.Text(), nullable=True))
    op.create_index(
        "ix_audit_log_request_id",
        "audit_log",
        ["request_id"],
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_request_id", table_name="audit_log")
    op.drop_column("audit_log", "request_id")
