"""The sample company in examples/: every file opens with its parser, the connectors read it
all, and examples/generate.py reproduces exactly what is committed."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from pathlib import Path

import docx
import openpyxl
import pptx
import pypdf
import pytest
import trafilatura

from connectors.acl_rules import Sidecar, load_sidecar
from connectors.base import ConnectorContext, FailedDocument, SourceDocument
from connectors.files import FilesConnector
from connectors.principals import validate_principals
from connectors.sql import SqlConnector
from server.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DOCS = EXAMPLES / "docs"
FORMATS = {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".md", ".txt", ".csv"}
SIDECAR = ".kb-acl.yaml"


def sample_files(root: Path = DOCS) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != SIDECAR)


def text_of(path: Path) -> str:
    """The text a reader gets out of one file, with the format's own library."""
    suffix = path.suffix
    if suffix == ".pdf":
        return "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
    if suffix == ".docx":
        document = docx.Document(str(path))
        cells = [c.text for t in document.tables for row in t.rows for c in row.cells]
        return "\n".join([p.text for p in document.paragraphs] + cells)
    if suffix == ".pptx":
        parts = []
        for slide in pptx.Presentation(str(path)).slides:
            parts += [s.text_frame.text for s in slide.shapes if s.has_text_frame]
            if slide.has_notes_slide:
                parts.append(slide.notes_slide.notes_text_frame.text)
        return "\n".join(parts)
    if suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        try:
            return "\n".join(
                f"{ws.title}: " + " | ".join("" if v is None else str(v) for v in row)
                for ws in book.worksheets
                for row in ws.iter_rows(values_only=True)
            )
        finally:
            book.close()
    return path.read_text(encoding="utf-8")


def database_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("support_tickets", "hr_policies")
        }
    finally:
        conn.close()


def test_every_supported_format_is_in_the_sample() -> None:
    suffixes = {p.suffix for p in sample_files()}
    assert suffixes == FORMATS
    folders = {p.parent.name for p in sample_files()}
    assert folders == {"public", "engineering", "hr", "sales", "finance"}


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: str(p.relative_to(DOCS)))
def test_sample_file_opens_with_its_parser(path: Path) -> None:
    text = text_of(path)
    assert len(text) >= 300, "a realistic document has some substance"
    if path.suffix == ".docx":
        styles = {p.style.name for p in docx.Document(str(path)).paragraphs}
        assert {"Title", "Heading 1"} <= styles
    if path.suffix == ".pptx":
        slides = list(pptx.Presentation(str(path)).slides)[1:]  # after the title slide
        assert slides and all(s.notes_slide.notes_text_frame.text.strip() for s in slides)
    if path.suffix == ".html":
        main = trafilatura.extract(path.read_text(encoding="utf-8")) or ""
        assert len(main.split()) >= 30
        assert "Cookie settings" in text and "Cookie settings" not in main  # boilerplate
    if path.suffix == ".csv":
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
        assert len(rows) >= 5 and len({len(r) for r in rows}) == 1


def test_every_folder_has_a_valid_sidecar() -> None:
    for folder in sorted(p for p in DOCS.iterdir() if p.is_dir()):
        sidecar = load_sidecar(folder / SIDECAR, f"{folder.name}/{SIDECAR}")
        assert isinstance(sidecar, Sidecar), sidecar
        assert sidecar.acl and sidecar.collection == folder.name
        expected_level = {"public": 0, "finance": 2}.get(folder.name, 1)
        assert sidecar.level == expected_level


def test_files_connector_reads_the_whole_share() -> None:
    settings = load_settings(EXAMPLES / "kb.yaml")
    config = next(s for s in settings.sources if s.kind == "files")
    connector = FilesConnector(
        config, ConnectorContext(base_dir=settings.config_dir, max_file_bytes=10_000_000)
    )
    connector.check()
    items = list(connector.full_load())
    failed = [i for i in items if isinstance(i, FailedDocument)]
    assert failed == []
    docs = {i.external_id: i for i in items if isinstance(i, SourceDocument)}
    assert set(docs) == {str(p.relative_to(DOCS)) for p in sample_files()}
    hr = docs["hr/parental-leave-policy.pdf"]
    assert (hr.collection, hr.level, hr.acl) == ("hr", 1, ("group:hr",))
    assert "16 weeks" in hr.text
    finance = docs["finance/budget-2026.xlsx"]
    assert (finance.collection, finance.level, finance.acl) == ("finance", 2, ("group:finance",))
    overview = docs["public/company-overview.html"]
    assert "Eindhoven" in overview.text and "Cookie settings" not in overview.text


def test_sqlite_database_has_audiences_and_cursors() -> None:
    conn = sqlite3.connect(EXAMPLES / "northwind.db")
    try:
        for table in ("support_tickets", "hr_policies"):
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            assert {"department", "acl", "updated_at"} <= columns
            acls = [row[0] for row in conn.execute(f"SELECT acl FROM {table}")]
            assert len(acls) >= 6
            for acl in acls:
                validate_principals(acl.split(","))
        audiences = dict(conn.execute("SELECT audience, acl FROM hr_policies").fetchall())
        assert audiences == {"all": "role:staff", "hr": "group:hr"}
    finally:
        conn.close()


def test_generate_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "generate.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    fresh = tmp_path / "docs"
    assert [p.relative_to(fresh) for p in sample_files(fresh)] == [
        p.relative_to(DOCS) for p in sample_files()
    ]
    for path in sample_files():
        regenerated = fresh / path.relative_to(DOCS)
        assert text_of(regenerated) == text_of(path), f"{path} differs: run examples/generate.py"
    for sidecar in sorted(DOCS.rglob(SIDECAR)):
        assert (fresh / sidecar.relative_to(DOCS)).read_text() == sidecar.read_text()
    assert database_rows(tmp_path / "northwind.db") == database_rows(EXAMPLES / "northwind.db")


def test_sql_connector_reads_every_row_with_its_audience() -> None:
    settings = load_settings(EXAMPLES / "kb.yaml")
    config = next(s for s in settings.sources if s.kind == "sql")
    connector = SqlConnector(
        config, ConnectorContext(base_dir=settings.config_dir, max_file_bytes=10_000_000)
    )
    try:
        connector.check()
        docs = {i.external_id: i for i in connector.full_load() if isinstance(i, SourceDocument)}
    finally:
        connector.close()
    rows = database_rows(EXAMPLES / "northwind.db")
    assert len(docs) == len(rows["support_tickets"]) + len(rows["hr_policies"])
    ticket = docs["support_tickets:1001"]
    assert ticket.acl == ("group:eng", "group:support")
    assert ticket.metadata["priority"] == "critical"
    assert (ticket.collection, ticket.level) == ("support/tickets", 1)
    assert docs["hr_policies:1"].acl == ("role:staff",)
    assert docs["hr_policies:4"].acl == ("group:hr",)
