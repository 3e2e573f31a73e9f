"""Zip bombs: ZIP containers are measured before any parser opens them (issue 9, item 2)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from connectors.base import ConnectorContext, FailedDocument, SourceDocument
from connectors.files import FilesConnector
from connectors.registry import parse_source_config
from connectors.zip_limits import ZipLimits

from .bombs import GIB, write_docx_bomb
from .corpus import make_docx


def _connector(root: Path, limits: ZipLimits | None = None) -> FilesConnector:
    cfg = parse_source_config({"name": "docs", "kind": "files", "root": str(root)})
    if limits is None:
        ctx = ConnectorContext(base_dir=root.parent, max_file_bytes=50 * 1024 * 1024)
    else:
        ctx = ConnectorContext(
            base_dir=root.parent, max_file_bytes=50 * 1024 * 1024, zip_limits=limits
        )
    return FilesConnector(cfg, ctx)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def bomb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bombs") / "docs"
    root.mkdir()
    size = write_docx_bomb(root / "bomb.docx", inflated=GIB)
    assert size < 1_200_000  # about 1 MB on disk, 1 GiB of XML inside
    # The same bytes under a name that says nothing of ZIP: sniffing is guarded too.
    (root / "bomb.txt").write_bytes((root / "bomb.docx").read_bytes())
    make_docx(root / "fine.docx")
    return root


def test_a_1mb_docx_holding_1gib_of_xml_is_refused_without_memory_growth(bomb_dir: Path) -> None:
    peak_before = _peak_rss_mib()
    started = time.monotonic()
    items = {i.external_id: i for i in _connector(bomb_dir).full_load()}
    elapsed = time.monotonic() - started
    growth = _peak_rss_mib() - peak_before
    for name in ("bomb.docx", "bomb.txt"):
        item = items[name]
        assert isinstance(item, FailedDocument), name
        assert "zip bomb" in item.reason and "ingest.max_compression_ratio" in item.reason
        assert "word/document.xml" in item.reason
    assert isinstance(items["fine.docx"], SourceDocument)
    # Parsing the XML took python-docx past 2.5 GB; reading the central directory costs KBs.
    assert growth < 100, f"peak RSS grew {growth:.0f} MiB"
    assert elapsed < 10


def test_total_uncompressed_size_has_its_own_limit(bomb_dir: Path) -> None:
    tight = ZipLimits(max_uncompressed_bytes=2_000, max_compression_ratio=100)
    item = {i.external_id: i for i in _connector(bomb_dir, tight).full_load()}["fine.docx"]
    assert isinstance(item, FailedDocument)
    assert "ingest.max_uncompressed_bytes" in item.reason and "limit of 2000 bytes" in item.reason
    # A ratio check alone would let a bomb of many moderately compressed members through.
    loose_ratio = ZipLimits(max_uncompressed_bytes=64 * 1024 * 1024, max_compression_ratio=10**6)
    bomb = {i.external_id: i for i in _connector(bomb_dir, loose_ratio).full_load()}["bomb.docx"]
    assert isinstance(bomb, FailedDocument)
    assert "ingest.max_uncompressed_bytes" in bomb.reason
