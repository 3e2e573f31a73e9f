"""Fixtures for policy tests: a database shared by one module, and a sync engine on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, create_engine

from server.db.embedded import EmbeddedPostgres
from server.db.engine import to_sqlalchemy_url
from tests.conftest import TEMPLATE_DB


@pytest.fixture(scope="module")
def module_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database shared by every test of one module (libpq URI)."""
    name = f"pol_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    yield pg_server.uri(name)
    with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="module")
def sync_engine(module_database: str) -> Iterator[Engine]:
    # No server-side prepared statements: a cached plan would ignore SET LOCAL planner
    # settings (the measured "exact scan silently uses HNSW" trap).
    engine = create_engine(
        to_sqlalchemy_url(module_database), connect_args={"prepare_threshold": None}
    )
    yield engine
    engine.dispose()
