"""Fixtures for the job tests: a folder source and the database it syncs into."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from server.db.engine import DatabaseTarget, to_sqlalchemy_url
from server.settings import Settings
from tests.ingest.helpers import sync_engine

SECTION = (
    "The {topic} team reviews every request within two working days. Escalations go to "
    "the duty manager, who decides within one day and records the outcome in the ledger. "
)


def write_notes(root: Path, count: int, *, paragraphs: int = 2) -> None:
    """``count`` Markdown notes, each a heading and a few paragraphs."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        body = "\n\n".join(SECTION.format(topic=f"topic-{i}-{p}") * 3 for p in range(paragraphs))
        (root / f"note-{i:03d}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    write_notes(root, 6)
    return root


@pytest.fixture
def jobs_settings(make_settings: Callable[..., Settings], notes: Path) -> Settings:
    source: dict[str, Any] = {"name": "notes", "kind": "files", "root": str(notes)}
    return make_settings(sources=[source])


@pytest.fixture
def jobs_engine(jobs_settings: Settings) -> Iterator[Engine]:
    with sync_engine(jobs_settings) as engine:
        yield engine


def target_of(settings: Settings) -> DatabaseTarget:
    assert settings.database.url is not None
    return DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value()))
