"""One real `kb serve` + `kb worker` per test module, on its own database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.db.embedded import EmbeddedPostgres
from tests.conftest import cloned_database
from tests.console.harness import Stack, console_stack


@pytest.fixture(scope="module")
def console_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    with cloned_database(pg_server, "console") as uri:
        yield uri


@pytest.fixture(scope="module")
def stack(console_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with console_stack(console_database, tmp_path_factory.mktemp("console")) as running:
        yield running
