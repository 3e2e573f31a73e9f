"""Incremental polls of a folder: only new or changed files are parsed and yielded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from connectors.base import PlacementChange, SourceDocument

from .test_files_formats import files_connector


def _ids(items: Any) -> set[str]:
    return {item.external_id for item in items}


def _roundtrip(cursor: Any) -> Any:
    """The pipeline stores cursors as JSON; what comes back must work the same."""
    return json.loads(json.dumps(cursor))


def _touch(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime, mtime))


def test_poll_yields_only_new_and_changed_files(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "a").mkdir(parents=True)
    base = 1_700_000_000_000_000_000
    for index, name in enumerate(("a/one.md", "a/two.md", "three.txt")):
        _touch(root / name, f"# {name}\n\ncontent {index}", base)

    connector = files_connector(root)
    items, cursor = connector.poll(None)
    assert _ids(items) == {"a/one.md", "a/two.md", "three.txt"}
    assert cursor["files"]["a/one.md"] == [base, (root / "a/one.md").stat().st_size]
    cursor = _roundtrip(cursor)

    items, cursor2 = connector.poll(cursor)
    assert _ids(items) == set()  # nothing changed: nothing parsed
    assert _roundtrip(cursor2) == cursor

    _touch(root / "a/two.md", "# two\n\nnew content!", base + 1)  # same size is not enough
    _touch(root / "four.md", "# four\n\nbrand new", base)
    (root / "three.txt").unlink()
    items, cursor3 = connector.poll(cursor)
    changed = list(items)
    assert _ids(changed) == {"a/two.md", "four.md"}
    assert isinstance(changed[0], SourceDocument)
    assert "three.txt" not in cursor3["files"]
    assert connector.scan_ids() == {"a/one.md", "a/two.md", "four.md"}


def test_sidecar_change_rereads_the_files_below_it(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "hr" / "sub").mkdir(parents=True)
    (root / "eng").mkdir()
    for name in ("hr/a.md", "hr/sub/b.md", "eng/c.md"):
        (root / name).write_text(f"# {name}\n\ntext")
    connector = files_connector(root)
    items, cursor = connector.poll(None)
    list(items)
    cursor = _roundtrip(cursor)

    (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:hr]\n")
    items, cursor = connector.poll(cursor)
    got = {i.external_id: i for i in items}
    assert set(got) == {"hr/a.md", "hr/sub/b.md"}
    # The files did not change: only their placement is yielded, without a parse (issue 12);
    # reading them for real gives the same placement.
    change = got["hr/sub/b.md"]
    assert isinstance(change, PlacementChange)
    assert change.acl == ("group:hr",) and change.moved_from is None
    loaded = change.load()
    assert isinstance(loaded, SourceDocument) and loaded.acl == ("group:hr",)

    items, cursor = connector.poll(_roundtrip(cursor))
    assert _ids(items) == set()
    (root / "hr" / ".kb-acl.yaml").unlink()  # removing a sidecar changes placement too
    items, cursor = connector.poll(_roundtrip(cursor))
    assert _ids(items) == {"hr/a.md", "hr/sub/b.md"}


def test_rule_change_rereads_everything(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "x.md").write_text("# x\n\ntext")
    (root / "y.md").write_text("# y\n\ntext")
    items, cursor = files_connector(root).poll(None)
    list(items)
    items, _ = files_connector(root, rules=[{"glob": "x.md", "level": 5}]).poll(_roundtrip(cursor))
    got = {i.external_id: i for i in items}
    assert set(got) == {"x.md", "y.md"}
    assert isinstance(got["x.md"], SourceDocument) and got["x.md"].level == 5


def test_failed_files_are_retried_until_they_ingest(tmp_path: Path) -> None:
    """The cursor never moves past a file that failed (issue 8, hole 6): each poll reads
    it again, so a fix (or a changed sidecar) applies at the next run."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "empty.txt").write_bytes(b"")
    (root / "fine.md").write_text("# fine\n\ntext")
    items, cursor = files_connector(root).poll(None)
    assert [type(i).__name__ for i in items] == ["FailedDocument", "SourceDocument"]
    assert set(cursor["files"]) == {"fine.md"}
    items, cursor = files_connector(root).poll(_roundtrip(cursor))
    assert [(type(i).__name__, i.external_id) for i in items] == [("FailedDocument", "empty.txt")]
    (root / "empty.txt").write_text("now it has text")
    items, _ = files_connector(root).poll(_roundtrip(cursor))
    assert [type(i).__name__ for i in items] == ["SourceDocument"]
