"""Fixtures for the freshness tests: a sync engine on this test's database and a counting
embedder around the session's real model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from server.embeddings.base import Embedder
from server.settings import Settings
from tests.freshness.helpers import CountingEmbedder
from tests.ingest.helpers import sync_engine


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    with sync_engine(settings) as e:
        yield e


@pytest.fixture
def counting(embedder: Embedder) -> Iterator[CountingEmbedder]:
    counter = CountingEmbedder(embedder)
    yield counter
    counter.release()
