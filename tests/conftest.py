"""Shared test fixtures: one embedded Postgres and one embedding model per session.

Every test that needs a database gets a fresh one cloned from a migrated template
(``CREATE DATABASE ... TEMPLATE``, ~0.1 s), so tests are isolated and run real migrations.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from server.db import migrate  # noqa: E402
from server.db.embedded import EmbeddedPostgres  # noqa: E402
from server.db.engine import DatabaseTarget, to_sqlalchemy_url  # noqa: E402
from server.embeddings.base import Embedder  # noqa: E402
from server.settings import Settings  # noqa: E402

TEMPLATE_DB = "kb_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """The session's embedded PostgreSQL 18 + pgvector, with a migrated template database."""
    home = tmp_path_factory.mktemp("pg")
    server = EmbeddedPostgres(home, TEMPLATE_DB)
    uri = server.start()
    migrate.upgrade(to_sqlalchemy_url(uri))
    yield server
    server.stop()


@contextmanager
def cloned_database(pg_server: EmbeddedPostgres, prefix: str) -> Iterator[str]:
    """A new, migrated, empty database cloned from the template; dropped afterwards.

    Yields its libpq URI. Every fixture that needs a database of its own (per test, per
    module, per session) goes through here."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    try:
        yield pg_server.uri(name)
    finally:
        with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def fresh_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A new, migrated, empty database for one test; dropped afterwards. Yields a libpq URI."""
    with cloned_database(pg_server, "t") as uri:
        yield uri


@pytest.fixture(scope="module")
def module_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A migrated database shared by every test (and server process) of one module."""
    with cloned_database(pg_server, "m") as uri:
        yield uri


@pytest.fixture
def make_settings(tmp_path: Path, fresh_database: str) -> Callable[..., Settings]:
    """Build Settings for this test's database and a temporary KB_HOME, plus overrides."""

    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "home": str(tmp_path / "home"),
            "database": {"url": fresh_database},
            "auth": {"mode": "dev"},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return Settings(**base)

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def db_target(fresh_database: str) -> DatabaseTarget:
    return DatabaseTarget(to_sqlalchemy_url(fresh_database))


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once for the whole session."""
    from server.embeddings import load_embedder
    from server.settings import EmbeddingSettings

    return load_embedder(EmbeddingSettings())
