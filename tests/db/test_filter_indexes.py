"""The access predicate's metadata conditions and prefix rules can use an index.

Migration 0007: a policy condition ``metadata.team == "x"`` compiles to JSONB containment,
which ``jsonb_path_ops`` GIN indexes answer; documents get prefix indexes for collection
and path. With sequential scans disabled the planner must pick the index: if the compiled
predicate stopped being indexable (say ``->>`` instead of ``@>``), it could not, and the
plan would fall back to a (disabled, still chosen) sequential scan.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, event, select

from policies.access import AuthzColumns
from policies.compiler import condition_sql
from policies.selectors import parse_conditions
from server.db.engine import to_sqlalchemy_url
from server.db.models import Chunk, Document


def _plan(uri: str, statement: Any) -> str:
    """EXPLAIN of the statement exactly as SQLAlchemy sends it (same binds, same types)."""
    engine = create_engine(to_sqlalchemy_url(uri))

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(
        conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool
    ) -> tuple[str, Any]:
        return ("EXPLAIN " + sql if sql.lstrip().upper().startswith("SELECT") else sql), params

    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            return "\n".join(row[0] for row in conn.execute(statement))
    finally:
        engine.dispose()


def test_a_metadata_condition_is_answered_by_the_gin_index(fresh_database: str) -> None:
    (cond,) = parse_conditions('metadata.team == "platform"')
    chunk_plan = _plan(
        fresh_database,
        select(Chunk.id).where(condition_sql(cond, AuthzColumns.of_chunks(Chunk))),
    )
    assert "ix_chunks_doc_metadata" in chunk_plan, chunk_plan
    document_plan = _plan(
        fresh_database,
        select(Document.id).where(condition_sql(cond, AuthzColumns.of_documents(Document))),
    )
    assert "ix_documents_metadata" in document_plan, document_plan


@pytest.mark.parametrize(
    ("column", "index"),
    [
        (Document.collection, "ix_documents_collection_prefix"),
        (Document.path, "ix_documents_path_prefix"),
    ],
)
def test_document_prefixes_are_answered_by_a_pattern_index(
    fresh_database: str, column: object, index: str
) -> None:
    plan = _plan(
        fresh_database,
        select(Document.id).where(column.startswith("eng/", autoescape=True)),  # type: ignore[attr-defined]
    )
    assert index in plan, plan
