"""Runtime role: the server runs as kb_runtime, which cannot rewrite the audit log

Migrations run as the schema owner; every kb process (server, worker, CLI) then acts as
the NOLOGIN role ``kb_runtime`` (``server.db.engine`` sets it on each connection), which

- reads and writes every table of the schema (present ones here, future ones through
  default privileges of the owner), including procrastinate's and the BM25 index;
- may only SELECT and INSERT on ``audit_log``: no UPDATE, DELETE or TRUNCATE, and, not
  being its owner, it cannot ``ALTER TABLE audit_log DISABLE TRIGGER`` either;
- owns nothing, so it cannot drop or alter any table.

A future table that must be append-only has to REVOKE from kb_runtime in its own migration:
default privileges grant full DML.

Roles are cluster-wide: the role is created once (if missing) and its grants are per
database. An owner without CREATEROLE needs an administrator to ``CREATE ROLE kb_runtime
NOLOGIN`` and ``GRANT kb_runtime TO <owner>`` first (docs/operations.md). The owner is made
a member so that it, too, may act as kb_runtime.

Revision ID: 0004_runtime_role
Revises: 0003_bm25
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_runtime_role"
down_revision: str | None = "0003_bm25"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "kb_runtime"

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role {ROLE} does not exist and % may not create it', current_user
                USING HINT = 'as an administrator: CREATE ROLE {ROLE} NOLOGIN; '
                             'GRANT {ROLE} TO ' || current_user || ' (docs/operations.md)';
        END;
    END IF;
    -- The owner must be able to SET ROLE kb_runtime. On PostgreSQL 16+ a role's creator
    -- holds only ADMIN on it (no SET), so grant SET explicitly there.
    IF current_setting('server_version_num')::int >= 160000 THEN
        IF NOT pg_has_role(current_user, '{ROLE}', 'SET') THEN
            EXECUTE format('GRANT {ROLE} TO %I WITH INHERIT FALSE, SET TRUE', current_user);
        END IF;
    ELSIF NOT pg_has_role(current_user, '{ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {ROLE} TO %I', current_user);
    END IF;
END
$$;
"""


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}")
    op.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    # The audit log: read and append, nothing else.
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {ROLE}")
    # Tables and sequences the owner creates in later migrations.
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {ROLE}"
    )


def downgrade() -> None:
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {ROLE}"
    )
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    # Kept: a server still running as kb_runtime then reports "schema at X" in /readyz
    # rather than a permission error.
    op.execute(f"GRANT SELECT ON alembic_version TO {ROLE}")
    # The role itself stays: it is cluster-wide and other kb databases may use it.
