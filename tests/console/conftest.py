"""One real `kb serve` + `kb worker` per test module, on its own database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from server.db.embedded import EmbeddedPostgres
from tests.conftest import TEMPLATE_DB
from tests.console.harness import Stack, console_stack


@pytest.fixture(scope="module")
def console_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"console_{uuid.uuid4().hex[:10]}"
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
def stack(console_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with console_stack(console_database, tmp_path_factory.mktemp("console")) as running:
        yield running
