"""Files: a sidecar edit and a folder move change authorization and place without parsing
or embedding; every chunk follows; search (which reads the chunk columns) enforces it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from server.ingest import catalog
from server.search.schemas import SearchQuery
from server.settings import Settings
from tests.freshness.helpers import CountingEmbedder, chunk_rows, last_run, postings_count
from tests.ingest.helpers import integrity_problems, live_documents, sync
from tests.search.corpus import acl_filter, open_service

pytestmark = pytest.mark.slow  # each test syncs three times and searches (about 35 s here)

TOPICS = ("parental leave", "sick leave", "holiday carry-over", "remote work", "payroll dates")


def _long_text(title: str, n: int) -> str:
    """A document long enough for several chunks, each paragraph distinct."""
    paragraphs = [f"# {title}"]
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        paragraphs.append(
            " ".join(
                f"Section {i} of {title} explains {topic} rule number {j} for employees "
                f"in office {i * 7 + j}, with examples and exceptions."
                for j in range(12)
            )
        )
    return "\n\n".join(paragraphs)


def write_share(root: Path) -> None:
    (root / "hr" / "sub").mkdir(parents=True)
    (root / "eng").mkdir()
    (root / "hr" / ".kb-acl.yaml").write_text(
        "acl: [group:hr, group:staff]\ncollection: hr\nmetadata: {dept: hr}\n"
    )
    (root / "hr" / "leave.md").write_text(_long_text("Leave policy", 6))
    (root / "hr" / "sub" / "payroll.md").write_text(_long_text("Payroll calendar", 4))
    (root / "eng" / "deploy.md").write_text("# Deploys\n\nWe deploy on Tuesdays after review.")


def share_settings(make_settings: Callable[..., Settings], root: Path) -> Settings:
    source: dict[str, Any] = {
        "name": "share",
        "kind": "files",
        "root": str(root),
        "acl": ["group:eng"],
    }
    return make_settings(sources=[source])


def search_titles(settings: Settings, embedder: Any, principal: str, text: str) -> set[str]:
    async def go() -> set[str]:
        async with open_service(settings, embedder) as service:
            result = await service.search(acl_filter(principal), SearchQuery(text=text, top_k=50))
            return {h.title for h in result.hits}

    return asyncio.run(go())


def test_sidecar_change_reauthorizes_every_chunk_without_embedding(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    engine: Engine,
    counting: CountingEmbedder,
) -> None:
    root = tmp_path / "share"
    write_share(root)
    settings = share_settings(make_settings, root)
    first = sync(settings, engine, counting, "share")
    assert first.counts.docs_added == 3
    before = chunk_rows(engine, "share")
    hr_chunks = {cid for cid, r in before.items() if r["external_id"].startswith("hr/")}
    assert len(hr_chunks) >= 6, "the HR documents should span several chunks each"
    postings = postings_count(engine)
    assert "Leave policy" in search_titles(settings, counting, "group:staff", "parental leave")
    embedded = counting.texts

    # Tighten: staff loses the HR folder, and the collection and metadata change too.
    (root / "hr" / ".kb-acl.yaml").write_text(
        "acl: [group:hr]\ncollection: hr/restricted\nlevel: 3\nmetadata: {dept: hr, tier: 2}\n"
    )
    result = sync(settings, engine, counting, "share")
    assert counting.texts == embedded, "an authorization-only change embedded text"
    assert result.counts.acl_updated == 2
    assert result.counts.docs_updated == result.counts.docs_added == 0
    assert result.counts.chunks_written == 0
    assert last_run(engine, "share")["acl_updated"] == 2

    after = chunk_rows(engine, "share")
    assert set(after) == set(before), "chunk rows were replaced instead of updated"
    for cid in hr_chunks:
        row = after[cid]
        assert row["acl"] == ["group:hr"], row["external_id"]
        assert row["collection"] == "hr/restricted" and row["level"] == 3
        assert row["doc_metadata"]["tier"] == 2 and row["doc_metadata"]["dept"] == "hr"
        # What the parser found stays (the base metadata), merged under the sidecar's.
        assert row["doc_metadata"]["file_name"] in ("leave.md", "payroll.md")
        assert row["embedding"] == before[cid]["embedding"]
    eng = [r for r in after.values() if r["external_id"] == "eng/deploy.md"]
    assert eng and all(r["acl"] == ["group:eng"] for r in eng), "the sidecar leaked sideways"
    assert postings_count(engine) == postings
    assert integrity_problems(engine) == []

    # Search enforces the new ACL at once: the removed group sees nothing of HR, HR does.
    assert "Leave policy" not in search_titles(settings, counting, "group:staff", "parental leave")
    assert "Leave policy" in search_titles(settings, counting, "group:hr", "parental leave")

    # Operators see the change and when it became searchable (kb sources list, /admin).
    view = next(v for v in catalog.list_sources(engine, settings) if v["name"] == "share")
    assert view["freshness"]["last_change_at"] and view["freshness"]["last_searchable_at"]
    assert view["last_run"]["acl_updated"] == 2 and view["watch"] is False

    # The same file read for real later (a full load) is recognised as unchanged.
    again = sync(settings, engine, counting, "share", full=True)
    assert counting.texts == embedded
    assert again.counts.docs_unchanged == 3 and again.counts.acl_updated == 0
    assert integrity_problems(engine) == []

    # A changed file is still re-embedded (the text hash is not fooled by the placement).
    (root / "hr" / "leave.md").write_text(_long_text("Leave policy", 6) + "\n\nNew paragraph.")
    changed = sync(settings, engine, counting, "share")
    assert changed.counts.docs_updated == 1 and counting.texts > embedded


def test_folder_move_rehomes_documents_without_embedding(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    engine: Engine,
    counting: CountingEmbedder,
) -> None:
    root = tmp_path / "share"
    write_share(root)
    (root / "archive").mkdir()
    (root / "archive" / ".kb-acl.yaml").write_text("acl: [group:archivists]\ncollection: archive\n")
    settings = share_settings(make_settings, root)
    sync(settings, engine, counting, "share")
    before = live_documents(engine, "share")
    doc_id = before["hr/sub/payroll.md"]["id"]
    chunks_before = {
        cid
        for cid, r in chunk_rows(engine, "share").items()
        if r["external_id"] == "hr/sub/payroll.md"
    }
    embedded = counting.texts

    shutil.move(str(root / "hr" / "sub"), str(root / "archive" / "payroll"))
    result = sync(settings, engine, counting, "share")
    assert counting.texts == embedded, "a folder move embedded text"
    assert result.counts.acl_updated == 1 and result.counts.docs_added == 0

    docs = live_documents(engine, "share")
    assert "hr/sub/payroll.md" not in docs
    moved = docs["archive/payroll/payroll.md"]
    assert moved["id"] == doc_id, "the document was re-created instead of re-homed"
    assert moved["path"] == "/archive/payroll/payroll.md"
    assert moved["collection"] == "archive" and moved["acl"] == ["group:archivists"]
    rows = chunk_rows(engine, "share")
    moved_chunks = {cid for cid, r in rows.items() if r["document_id"] == doc_id}
    assert moved_chunks == chunks_before
    assert all(rows[c]["path"] == "/archive/payroll/payroll.md" for c in moved_chunks)
    assert all(rows[c]["acl"] == ["group:archivists"] for c in moved_chunks)
    assert integrity_problems(engine) == []
    # The old address no longer answers for anyone who could read it there.
    hr_hits = search_titles(settings, counting, "group:staff", "payroll dates calendar")
    assert "Payroll calendar" not in hr_hits
    assert "Payroll calendar" in search_titles(
        settings, counting, "group:archivists", "payroll dates calendar"
    )
