"""`kb serve --load-examples`: the first start ingests never-synced sources, later ones skip."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from server.cli.bootstrap import sync_never_synced
from server.settings import Settings
from tests.ingest.helpers import live_documents, sync_engine
from tests.jobs.conftest import target_of, write_notes


def test_first_start_syncs_and_second_start_is_quick(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    write_notes(tmp_path / "a", 2)
    write_notes(tmp_path / "b", 1)
    settings = make_settings(
        sources=[
            {"name": "a", "kind": "files", "root": str(tmp_path / "a")},
            {"name": "b", "kind": "files", "root": str(tmp_path / "b")},
            {"name": "off", "kind": "files", "root": str(tmp_path / "a"), "enabled": False},
        ]
    )
    target = target_of(settings)
    assert sync_never_synced(settings, target) == ["a", "b"]
    with sync_engine(settings) as engine:
        assert len(live_documents(engine, "a")) == 2 and len(live_documents(engine, "b")) == 1
        assert live_documents(engine, "off") == {}
    started = time.monotonic()
    assert sync_never_synced(settings, target) == []
    assert time.monotonic() - started < 5  # no model load, no sync
