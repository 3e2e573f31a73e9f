"""The authorization column set is declared once (server.db.models) and every consumer
(the access predicate's columns, the per-row re-check, both tables) agrees with it."""

from __future__ import annotations

import dataclasses

from sqlalchemy import inspect

from policies.access import AuthzColumns, RowAttributes
from server.db.models import (
    AUTHZ_COLUMNS,
    CHUNK_AUTHZ_ATTRS,
    DOCUMENT_AUTHZ_ATTRS,
    Chunk,
    Document,
)


def test_access_columns_and_row_recheck_cover_exactly_the_declared_set() -> None:
    assert tuple(f.name for f in dataclasses.fields(AuthzColumns)) == AUTHZ_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(RowAttributes)) == AUTHZ_COLUMNS
    assert tuple(CHUNK_AUTHZ_ATTRS) == tuple(DOCUMENT_AUTHZ_ATTRS) == AUTHZ_COLUMNS


def test_every_chunk_carries_a_not_null_copy_of_each_document_column() -> None:
    chunks, documents = inspect(Chunk), inspect(Document)
    for name in AUTHZ_COLUMNS:
        (chunk_col,) = chunks.attrs[CHUNK_AUTHZ_ATTRS[name]].columns
        (doc_col,) = documents.attrs[DOCUMENT_AUTHZ_ATTRS[name]].columns
        assert type(chunk_col.type) is type(doc_col.type), name
        assert not chunk_col.nullable and not doc_col.nullable, name


def test_columns_of_each_table_are_its_model_attributes() -> None:
    on_chunks = AuthzColumns.of_chunks(Chunk)
    on_documents = AuthzColumns.of_documents(Document)
    assert on_chunks.metadata is Chunk.doc_metadata and on_chunks.document_id is Chunk.document_id
    assert on_documents.metadata is Document.metadata_ and on_documents.document_id is Document.id
    for name in AUTHZ_COLUMNS:
        assert getattr(on_chunks, name).class_ is Chunk
        assert getattr(on_documents, name).class_ is Document
