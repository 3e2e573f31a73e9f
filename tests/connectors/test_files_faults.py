"""Files that cannot be read fail alone, with a reason; everything else is still read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.base import ConnectorContext
from connectors.files import FilesConnector
from connectors.registry import parse_source_config
from core.errors import ConnectorError

from .corpus import write_corpus
from .test_files_formats import files_connector, split


def test_bad_files_fail_with_reasons_and_the_rest_is_read(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write_corpus(root)
    ok, failed = split(list(files_connector(root).full_load()))
    reasons = {k: v.reason for k, v in failed.items()}
    assert reasons == {
        "bad/locked.pdf": "encrypted PDF: a password is required to read it",
        "bad/broken.pdf": reasons["bad/broken.pdf"],
        "bad/empty.txt": "empty file (0 bytes)",
        "bad/binary.txt": "not text: the file holds binary data",
        "bad/unknown-encoding.txt": "not text: no character encoding fits the content",
    }
    assert reasons["bad/broken.pdf"].startswith("corrupt PDF")
    assert failed["bad/locked.pdf"].uri == (root / "bad" / "locked.pdf").as_uri()
    assert failed["bad/binary.txt"].size_bytes == 2048
    assert len(ok) == 10  # every good file of every format


def test_oversized_file_fails_with_the_limit(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    with (root / "huge.txt").open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # a sparse 200 MB file: no disk, no time
    (root / "small.txt").write_text("fits")
    limit = 50 * 1024 * 1024
    ok, failed = split(list(files_connector(root, max_bytes=limit).full_load()))
    assert set(ok) == {"small.txt"}
    assert failed["huge.txt"].reason == (
        f"file is {200 * 1024 * 1024} bytes, larger than the limit of {limit} bytes "
        "(ingest.max_file_bytes)"
    )
    assert failed["huge.txt"].size_bytes == 200 * 1024 * 1024


def test_special_files_are_not_listed(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "ok.md").write_text("# Fine\ntext")
    os.mkfifo(root / "pipe.txt")  # opening a FIFO would block the sync forever
    ok, failed = split(list(files_connector(root).full_load()))
    assert set(ok) == {"ok.md"} and not failed


def test_check_refuses_missing_or_non_folder_root(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="root folder 'nowhere' does not exist"):
        cfg = parse_source_config({"name": "d", "kind": "files", "root": "nowhere"})
        FilesConnector(cfg, ConnectorContext(base_dir=tmp_path, max_file_bytes=10)).check()
    (tmp_path / "file.txt").write_text("x")
    cfg = parse_source_config({"name": "d", "kind": "files", "root": "file.txt"})
    connector = FilesConnector(cfg, ConnectorContext(base_dir=tmp_path, max_file_bytes=10))
    with pytest.raises(ConnectorError, match="root 'file.txt' is not a folder"):
        connector.check()
    # A vanished root must fail a scan, not look like "every document was deleted".
    with pytest.raises(ConnectorError, match="is not a folder"):
        connector.scan_ids()


def test_relative_root_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "share" / "a").mkdir(parents=True)
    (tmp_path / "share" / "a" / "x.md").write_text("# X\nbody")
    cfg = parse_source_config({"name": "d", "kind": "files", "root": "share"})
    connector = FilesConnector(cfg, ConnectorContext(base_dir=tmp_path, max_file_bytes=1000))
    connector.check()
    assert connector.scan_ids() == {"a/x.md"}


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="principal 'hr' needs a prefix"):
        parse_source_config(
            {"name": "d", "kind": "files", "root": ".", "rules": [{"glob": "*", "acl": ["hr"]}]}
        )
    with pytest.raises(ValueError, match="rules.0.level"):
        parse_source_config(
            {"name": "d", "kind": "files", "root": ".", "rules": [{"glob": "*", "level": 12}]}
        )
    with pytest.raises(ValueError, match="acl: Value error, principal 'staff' needs a prefix"):
        parse_source_config({"name": "d", "kind": "files", "root": ".", "acl": ["staff"]})
    with pytest.raises(ValueError, match="Extra inputs"):
        parse_source_config({"name": "d", "kind": "files", "root": ".", "recursive": True})
