"""The pipeline end to end on a real folder of every format, through the files connector."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from core.errors import DatabaseUnavailable
from server.embeddings.base import Embedder
from server.settings import Settings
from tests.connectors.corpus import write_corpus
from tests.ingest.helpers import integrity_problems, live_documents, run_row, sync

GOOD = {
    "policies/expenses.pdf",
    "policies/handbook.docx",
    "policies/leave.html",
    "policies/deploy.md",
    "policies/german.txt",
    "policies/japanese.txt",
    "sales/q3.pptx",
    "sales/staff.xlsx",
    "sales/notes.txt",
    "sales/leads.csv",
}
BAD = {
    "bad/locked.pdf",
    "bad/broken.pdf",
    "bad/empty.txt",
    "bad/binary.txt",
    "bad/unknown-encoding.txt",
    "bad/huge.txt",
}


def files_source(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "docs",
        "kind": "files",
        "root": str(root),
        "collection": "general",
        "rules": [
            {
                "glob": "policies/**",
                "acl": ["group:hr", "user:alice"],
                "collection": "hr",
                "level": 2,
            }
        ],
        **extra,
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_corpus(root)
    (root / "bad" / "huge.txt").write_bytes(b"a" * 300_000)  # beyond max_file_bytes below
    return root


@pytest.fixture
def files_settings(make_settings: Callable[..., Settings], corpus: Path) -> Settings:
    return make_settings(sources=[files_source(corpus)], ingest={"max_file_bytes": 200_000})


@pytest.fixture
def files_engine(files_settings: Settings) -> Any:
    from tests.ingest.helpers import sync_engine

    with sync_engine(files_settings) as e:
        yield e


def test_every_format_ingests_and_bad_files_are_recorded_with_reasons(
    files_settings: Settings, files_engine: Engine, embedder: Embedder
) -> None:
    result = sync(files_settings, files_engine, embedder, "docs")
    run = run_row(files_engine, result.run_id)
    assert run["status"] == "succeeded"
    assert run["docs_seen"] == len(GOOD) + len(BAD)
    assert run["docs_added"] == len(GOOD) and run["docs_failed"] == len(BAD)
    assert run["docs_updated"] == run["docs_deleted"] == run["docs_unchanged"] == 0
    assert run["bytes_read"] > 0 and run["finished_at"] and run["duration_s"] is not None
    reasons = {f["external_id"]: f["reason"] for f in run["failures"]}
    assert set(reasons) == BAD
    assert "0 bytes" in reasons["bad/empty.txt"]
    assert "limit" in reasons["bad/huge.txt"]
    assert all(len(r) > 5 for r in reasons.values())

    docs = live_documents(files_engine, "docs")
    assert set(docs) == GOOD
    assert all(d["chunks"] for d in docs.values())
    assert run["chunks_written"] == sum(len(d["chunks"]) for d in docs.values())
    handbook = docs["policies/handbook.docx"]
    assert any("Leave" in heading for heading, _ in handbook["chunks"])
    assert any("25 days of annual leave" in body for _, body in handbook["chunks"])
    assert any("speaker" in b.lower() or "Berlin" in b for _, b in docs["sales/q3.pptx"]["chunks"])
    assert not integrity_problems(files_engine)
    with files_engine.connect() as conn:
        assert conn.execute(text("SELECT max(token_count) FROM chunks")).scalar_one() <= 254


def test_acl_columns_are_copied_to_every_chunk(
    files_settings: Settings, files_engine: Engine, embedder: Embedder
) -> None:
    sync(files_settings, files_engine, embedder, "docs")
    with files_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT path, collection, level, acl, source, content_type FROM chunks")
        ).all()
    by_path = {r.path: r for r in rows}
    hr = by_path["/policies/handbook.docx"]
    assert (hr.collection, hr.level, sorted(hr.acl), hr.source) == (
        "hr",
        2,
        ["group:hr", "user:alice"],
        "docs",
    )
    sales = by_path["/sales/notes.txt"]
    # No ACL from the source or a rule: unknown, stored as no principals (admins only).
    assert (sales.collection, sales.level, sales.acl) == ("general", 0, [])
    assert sales.content_type.startswith("text/")
    assert not integrity_problems(files_engine)  # includes metadata and modified_at


def test_resync_unchanged_edited_and_deleted_files(
    files_settings: Settings, files_engine: Engine, embedder: Embedder, corpus: Path
) -> None:
    sync(files_settings, files_engine, embedder, "docs")
    before = live_documents(files_engine, "docs")

    again = run_row(files_engine, sync(files_settings, files_engine, embedder, "docs").run_id)
    assert again["chunks_written"] == 0
    assert again["docs_added"] == again["docs_updated"] == again["docs_deleted"] == 0
    assert again["docs_unchanged"] == len(GOOD)
    assert live_documents(files_engine, "docs") == before

    (corpus / "sales" / "notes.txt").write_text("Call the client on Friday instead.\n")
    os.utime(corpus / "sales" / "notes.txt", ns=(1, 2_000_000_000_000_000_000))
    (corpus / "policies" / "deploy.md").unlink()
    (corpus / "sales" / "new.md").write_text("# Pricing\n\nList prices rise in May.\n")
    third = run_row(files_engine, sync(files_settings, files_engine, embedder, "docs").run_id)
    assert (third["docs_added"], third["docs_updated"], third["docs_deleted"]) == (1, 1, 0 + 1)
    assert third["docs_unchanged"] == len(GOOD) - 2
    after = live_documents(files_engine, "docs")
    assert "policies/deploy.md" not in after and "sales/new.md" in after
    assert after["sales/notes.txt"]["chunks"][0][1].startswith("Call the client on Friday")
    assert after["sales/notes.txt"]["id"] == before["sales/notes.txt"]["id"]  # stable id
    with files_engine.connect() as conn:
        gone = conn.execute(
            text(
                "SELECT deleted_at IS NOT NULL FROM documents "
                "WHERE external_id = 'policies/deploy.md'"
            )
        ).scalar_one()
        assert gone
        assert (
            conn.execute(
                text("SELECT count(*) FROM chunks WHERE text LIKE '%deploy --rollback%'")
            ).scalar_one()
            == 0
        )
    assert not integrity_problems(files_engine)


def test_replacement_is_atomic_when_the_write_fails(
    files_settings: Settings, files_engine: Engine, embedder: Embedder, corpus: Path
) -> None:
    sync(files_settings, files_engine, embedder, "docs")
    before = live_documents(files_engine, "docs")
    # A real failure inside the batch's transaction. DDL needs the owner's login: the
    # engine under test acts as kb_runtime, which may not create triggers.
    owner = files_settings.database.url
    assert owner is not None
    with psycopg.connect(owner.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.text LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned chunk'; END IF; "
            "RETURN NEW; END $$; CREATE TRIGGER poison BEFORE INSERT ON chunks "
            "FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    (corpus / "sales" / "notes.txt").write_text("Rewritten notes.\n\n" + "More text. " * 400)
    (corpus / "policies" / "german.txt").write_text("POISON in the second document.\n")
    with pytest.raises(DatabaseUnavailable):
        sync(files_settings, files_engine, embedder, "docs")
    # Both documents of the failed batch keep their old row and all their old chunks.
    assert live_documents(files_engine, "docs") == before
    with psycopg.connect(owner.get_secret_value(), autocommit=True) as owner_conn:
        owner_conn.execute("DROP TRIGGER poison ON chunks")
    with files_engine.begin() as conn:
        failed = conn.execute(
            text("SELECT status, error FROM ingest_runs ORDER BY id DESC LIMIT 1")
        ).one()
    assert failed.status == "failed" and "poisoned chunk" in failed.error
    sync(files_settings, files_engine, embedder, "docs")
    after = live_documents(files_engine, "docs")
    assert after["policies/german.txt"]["chunks"][0][1].startswith("POISON")
    assert len(after["sales/notes.txt"]["chunks"]) > 1
    assert not integrity_problems(files_engine)
