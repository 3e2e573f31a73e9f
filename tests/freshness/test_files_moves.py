"""The files connector tells a folder move (same inode, size, time and name under a new
folder) from a rename or an edit, and yields only placements for what did not change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from connectors.base import PlacementChange, SourceDocument
from tests.connectors.test_files_formats import files_connector


def _poll(root: Path, cursor: Any) -> tuple[dict[str, Any], Any]:
    items, cursor = files_connector(root).poll(cursor)
    got = {i.external_id: i for i in items}
    return got, json.loads(json.dumps(cursor))


def test_moves_are_placements_renames_and_edits_are_read(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "a").mkdir(parents=True)
    for name in ("one.md", "two.md", "three.md"):
        (root / "a" / name).write_text(f"# {name}\n\ntext of {name}")
    got, cursor = _poll(root, None)
    assert all(isinstance(i, SourceDocument) for i in got.values())

    shutil.move(str(root / "a"), str(root / "b"))
    (root / "b" / "two.md").rename(root / "b" / "deux.md")  # renamed: re-read
    with (root / "b" / "three.md").open("a") as f:  # edited after the move: re-read
        f.write("\n\nmore")
    got, cursor = _poll(root, cursor)
    assert set(got) == {"b/one.md", "b/deux.md", "b/three.md"}
    one = got["b/one.md"]
    assert isinstance(one, PlacementChange) and one.moved_from == "a/one.md"
    assert one.path == "/b/one.md"
    assert isinstance(got["b/deux.md"], SourceDocument)
    assert isinstance(got["b/three.md"], SourceDocument)

    # Nothing changed since: nothing is yielded.
    got, cursor = _poll(root, cursor)
    assert got == {}
