"""Large documents: capped text and chunks (stored truncated, the run says so), chunks
embedded in batches, and progress committed within one document (issue 9, item 3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import Engine, text

from server.embeddings.base import Embedder, Vectors
from server.ingest import catalog
from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents, run_row, sync, sync_engine


class RecordingEmbedder:
    """The real embedder, recording each call's size and what the run row said meanwhile."""

    def __init__(self, inner: Embedder, engine: Engine) -> None:
        self._inner = inner
        self._engine = engine
        self.calls: list[int] = []
        self.seen_during: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        with self._engine.connect() as conn:
            seen = conn.execute(
                text("SELECT docs_seen FROM ingest_runs ORDER BY id DESC LIMIT 1")
            ).scalar_one()
        self.seen_during.append(int(seen))
        return self._inner.embed_documents(texts)


def write_big_xlsx(path: Path, rows: int, cols: int) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Ledger")
    for r in range(rows):
        sheet.append([f"entry {r}-{c} account {r * cols + c}" for c in range(cols)])
    workbook.save(str(path))


def test_a_big_spreadsheet_is_capped_embedded_in_batches_with_progress(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "books"
    root.mkdir()
    write_big_xlsx(root / "ledger.xlsx", rows=2_000, cols=20)  # 40,000 cells
    (root / "small.md").write_text("# Small\n\nA short note about the ledger.\n")
    settings = make_settings(
        sources=[{"name": "books", "kind": "files", "root": str(root)}],
        ingest={"max_chunks_per_document": 40, "embed_batch_size": 8},
    )
    with sync_engine(settings) as engine:
        spy = RecordingEmbedder(embedder, engine)
        result = sync(settings, engine, spy, "books")
        docs = live_documents(engine, "books")
        run = run_row(engine, result.run_id)
        view = catalog.get_source(engine, settings, "books")
        assert integrity_problems(engine) == []
    ledger = docs["ledger.xlsx"]
    assert len(ledger["chunks"]) == 40
    assert "only the first 40 kept" in ledger["metadata"]["truncated"]
    assert "ingest.max_chunks_per_document" in ledger["metadata"]["truncated"]
    # The model never got more than one batch at a time (it got 40+ chunks in one call).
    assert max(spy.calls) <= 8 and sum(spy.calls) == 41
    # While the big document was being embedded, the run row already counted what was read.
    assert spy.seen_during[-1] >= 1
    assert (run["docs_added"], run["truncated_documents"]) == (2, 1)
    assert view["truncated_count"] == 1
    assert view["truncated"][0]["external_id"] == "ledger.xlsx"


def test_text_beyond_max_document_chars_is_cut_and_recorded(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    body = "\n\n".join(f"Paragraph {i} talks about invoices and travel." for i in range(400))
    (root / "long.md").write_text("# Long\n\n" + body)
    settings = make_settings(
        sources=[{"name": "notes", "kind": "files", "root": str(root)}],
        ingest={"max_document_chars": 3_000},
    )
    with sync_engine(settings) as engine:
        first = sync(settings, engine, embedder, "notes")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT content FROM documents")).scalar_one()
        doc = live_documents(engine, "notes")["long.md"]
        second = sync(settings, engine, embedder, "notes")  # unchanged: not re-embedded
        assert run_row(engine, second.run_id)["truncated_documents"] == 1
    assert len(stored) <= 3_000 and "Paragraph 0 " in stored and "Paragraph 399" not in stored
    assert "ingest.max_document_chars" in doc["metadata"]["truncated"]
    assert (second.counts.docs_unchanged, second.counts.chunks_written) == (1, 0)
    assert first.counts.docs_added == 1
