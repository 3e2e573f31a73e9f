"""A change log of what list_sources counts, so a cached count is brought up to date
instead of recounted

``list_sources`` counts the live documents per (source, collection) that the caller may
read. Its per-caller cache (``server/search/source_counts.py``) was dropped by every
documents write, and the recount scans every readable document's row: 100-260 ms for broad
callers at 250,000 documents, on every listing while an ingestion runs.

Every insert, update or delete of a ``documents`` row that changes what a count could see
(the row going live or leaving, or one of its authorization columns changing while live)
now adds rows to ``document_changes``: ``-1`` with the old attributes, ``+1`` with the new,
stamped with the writing transaction's id. A cached count keeps the snapshot it was
counted in (``pg_current_snapshot()``); bringing it up to date is one statement over the
log rows of transactions that snapshot did not see, under the caller's own predicate
(the same SQL as the full count, on the same columns), summed per (source, collection).

The log is pruned at the end of every sync run (``kb_prune_document_changes``): rows of
transactions older than every row written in the last ``keep`` interval go, and
``document_changes_horizon`` records the transaction id below which rows may be gone. A
cached count whose snapshot is older than the horizon (``pg_snapshot_xmin(snapshot) <
horizon``) is counted afresh instead. ``TRUNCATE documents`` (no row triggers) moves the
horizon past itself, so no count from before it is ever brought forward. Transaction ids
belong to one server: ``kb restore`` empties the log and sets the horizon to the restoring
server's next transaction (``server/ops/restore.py``).

Revision ID: 0011_document_changes
Revises: 0010_tokeniser_one_pass
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_document_changes"
down_revision: str | None = "0010_tokeniser_one_pass"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ATTRIBUTES = "document_id, source, collection, path, level, acl, content_type, metadata"


def _values(row: str, delta: int) -> str:
    cols = ", ".join(
        f"{row}.{c}" for c in ("source", "collection", "path", "level", "acl", "content_type")
    )
    return f"({delta}, {row}.id, {cols}, {row}.metadata)"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE document_changes (
            id bigint GENERATED ALWAYS AS IDENTITY,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            changed_at timestamptz NOT NULL DEFAULT now(),
            delta smallint NOT NULL,
            document_id uuid NOT NULL,
            source text NOT NULL,
            collection text NOT NULL,
            path text NOT NULL,
            level smallint NOT NULL,
            acl text[] NOT NULL,
            content_type text NOT NULL,
            metadata jsonb NOT NULL,
            CONSTRAINT pk_document_changes PRIMARY KEY (id),
            CONSTRAINT ck_document_changes_delta CHECK (delta IN (-1, 1))
        )
        """
    )
    op.execute("CREATE INDEX ix_document_changes_xid ON document_changes (xid)")
    op.execute(
        """
        CREATE TABLE document_changes_horizon (
            id boolean DEFAULT true NOT NULL,
            horizon xid8 NOT NULL,
            CONSTRAINT pk_document_changes_horizon PRIMARY KEY (id),
            CONSTRAINT ck_document_changes_horizon_one_row CHECK (id)
        )
        """
    )
    # Counts cached before this migration have no snapshot: nothing to bring forward.
    op.execute(
        "INSERT INTO document_changes_horizon (horizon) "
        "VALUES (pg_snapshot_xmin(pg_current_snapshot()))"
    )
    op.execute(
        f"""
        CREATE FUNCTION kb_log_document_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL THEN
                IF TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL
                   AND (NEW.id, NEW.source, NEW.collection, NEW.path, NEW.level, NEW.acl,
                        NEW.content_type, NEW.metadata)
                       IS NOT DISTINCT FROM
                       (OLD.id, OLD.source, OLD.collection, OLD.path, OLD.level, OLD.acl,
                        OLD.content_type, OLD.metadata) THEN
                    RETURN NULL;  -- live before and after, same attributes: no count moves
                END IF;
                INSERT INTO document_changes (delta, {ATTRIBUTES})
                VALUES {_values("OLD", -1)};
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL THEN
                INSERT INTO document_changes (delta, {ATTRIBUTES})
                VALUES {_values("NEW", 1)};
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER kb_log_document_change AFTER INSERT OR UPDATE OR DELETE ON documents "
        "FOR EACH ROW EXECUTE FUNCTION kb_log_document_change()"
    )
    op.execute(
        """
        CREATE FUNCTION kb_documents_truncated() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            -- A snapshot that did not see this TRUNCATE has an xmin at or below this
            -- transaction's id (it was running, or not yet started): none of them may be
            -- brought forward. (xid8 has no arithmetic: +1 goes through bigint.)
            UPDATE document_changes_horizon
               SET horizon = GREATEST(
                   horizon, (pg_current_xact_id()::text::bigint + 1)::text::xid8);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER kb_documents_truncated AFTER TRUNCATE ON documents "
        "FOR EACH STATEMENT EXECUTE FUNCTION kb_documents_truncated()"
    )
    op.execute(
        """
        CREATE FUNCTION kb_prune_document_changes(keep interval) RETURNS bigint
        LANGUAGE sql AS $$
            WITH cut AS (
                SELECT LEAST(
                    pg_snapshot_xmin(pg_current_snapshot()),
                    COALESCE(
                        (SELECT min(xid) FROM document_changes
                          WHERE changed_at >= now() - keep),
                        pg_snapshot_xmin(pg_current_snapshot()))) AS xid
            ), moved AS (
                UPDATE document_changes_horizon
                   SET horizon = GREATEST(horizon, (SELECT xid FROM cut))
                RETURNING 1
            ), gone AS (
                DELETE FROM document_changes WHERE xid < (SELECT xid FROM cut) RETURNING 1
            )
            SELECT count(*) FROM gone
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION kb_prune_document_changes(interval)")
    op.execute("DROP TRIGGER kb_documents_truncated ON documents")
    op.execute("DROP FUNCTION kb_documents_truncated()")
    op.execute("DROP TRIGGER kb_log_document_change ON documents")
    op.execute("DROP FUNCTION kb_log_document_change()")
    op.execute("DROP TABLE document_changes_horizon")
    op.execute("DROP TABLE document_changes")
