"""Fixtures for the scale-out tests: a migrated database shared by one module's processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from server.db.embedded import EmbeddedPostgres
from tests.conftest import TEMPLATE_DB


@pytest.fixture(scope="module")
def module_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A new migrated database for one module (several processes share it); a libpq URI."""
    name = f"scale_{os.getpid()}_{uuid.uuid4().hex[:8]}"
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
