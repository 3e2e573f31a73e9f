"""ACCEPTANCE: a MariaDB table of 10,000 rows, then 100 updates, 20 deletes and 2 inserts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from server.embeddings import load_embedder
from server.embeddings.base import Embedder
from server.settings import EmbeddingSettings, Settings
from tests.ingest.helpers import integrity_problems, run_row, sync, sync_engine
from tests.ingest.mariadb import connect, create_tickets, mariadb_database, tickets_source

ROWS = 10_000
UPDATED = range(100, 4100, 40)  # 100 rows
DELETED = range(5000, 5200, 10)  # 20 rows
INSERTED = (ROWS + 1, ROWS + 2)


@pytest.fixture(scope="module")
def fast_embedder() -> Embedder:
    """The same model on the fastest ingest backend here (torch-bf16 where the CPU has it):
    this test checks counts and stored text, which do not depend on the vectors' precision."""
    return load_embedder(EmbeddingSettings(ingest_backend="auto"))


def chunk_texts(engine: object, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            text(
                "SELECT d.external_id, c.text FROM chunks c "
                "JOIN documents d ON d.id = c.document_id "
                "WHERE d.source = 'tickets' AND d.external_id = ANY(:ids)"
            ),
            {"ids": [f"tickets:{i}" for i in ids]},
        ).all()
    for ext, body in rows:
        out[int(ext.split(":")[1])].append(body)
    return out


def test_incremental_sync_of_10000_rows(
    make_settings: Callable[..., Settings], fast_embedder: Embedder
) -> None:
    embedder = fast_embedder
    with mariadb_database() as database:
        create_tickets(database, ROWS)
        settings = make_settings(sources=[tickets_source(database)])
        with sync_engine(settings) as engine:
            first = run_row(engine, sync(settings, engine, embedder, "tickets").run_id)
            assert (first["status"], first["docs_added"], first["chunks_written"]) == (
                "succeeded",
                ROWS,
                ROWS,
            )

            with connect(database) as conn, conn.cursor() as cur:
                cur.executemany(
                    "UPDATE tickets SET body = %s, updated_at = NOW(6) WHERE id = %s",
                    [(f"Resolved: toner {i} replaced by the vendor.", i) for i in UPDATED],
                )
                cur.executemany("DELETE FROM tickets WHERE id = %s", [(i,) for i in DELETED])
                cur.executemany(
                    "INSERT INTO tickets VALUES (%s, %s, %s, 'billing', NOW(6))",
                    [(i, f"Ticket {i}", f"Invoice {i} was charged twice.") for i in INSERTED],
                )

            second = run_row(engine, sync(settings, engine, embedder, "tickets").run_id)
            assert second["status"] == "succeeded"
            assert second["docs_added"] + second["docs_updated"] == 102
            assert (second["docs_added"], second["docs_updated"]) == (2, 100)
            assert second["docs_deleted"] == 20
            assert second["docs_unchanged"] == ROWS - 100 - 20
            assert second["docs_failed"] == 0 and second["chunks_written"] == 102
            # Incremental: only rows changed since the cursor (plus its look-back) were read.
            assert second["docs_seen"] < 200

            texts = chunk_texts(engine, [*UPDATED, *DELETED, *INSERTED])
            for i in UPDATED:
                assert len(texts[i]) == 1
                assert f"toner {i} replaced" in texts[i][0]
                assert "jams daily" not in texts[i][0]
            assert all(texts[i] == [] for i in DELETED)
            for i in INSERTED:
                assert texts[i] == [f"Ticket {i}\nInvoice {i} was charged twice."]
            with engine.connect() as conn:
                live, chunks = conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
                        "(SELECT count(*) FROM chunks) FROM documents"
                    )
                ).one()
                acl = conn.execute(
                    text(
                        "SELECT c.acl FROM chunks c JOIN documents d ON d.id = c.document_id "
                        "WHERE d.external_id = 'tickets:10001'"
                    )
                ).scalar_one()
            assert live == chunks == ROWS - 20 + 2
            assert acl == ["group:billing"]
            assert not integrity_problems(engine)
