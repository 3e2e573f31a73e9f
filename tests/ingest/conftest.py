"""Fixtures for the ingestion tests: a sync engine on this test's database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from server.settings import Settings
from tests.ingest.helpers import sync_engine


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    with sync_engine(settings) as e:
        yield e
