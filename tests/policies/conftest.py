"""Fixtures for policy tests: a database shared by one module, and a sync engine on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from server.db.engine import to_sqlalchemy_url


@pytest.fixture(scope="module")
def sync_engine(module_database: str) -> Iterator[Engine]:
    # No server-side prepared statements: a cached plan would ignore SET LOCAL planner
    # settings (the measured "exact scan silently uses HNSW" trap).
    engine = create_engine(
        to_sqlalchemy_url(module_database), connect_args={"prepare_threshold": None}
    )
    yield engine
    engine.dispose()
