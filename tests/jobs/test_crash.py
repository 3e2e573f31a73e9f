"""CRASH: a worker killed with SIGKILL mid-sync; recovery and a re-run converge exactly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from connectors.base import SourceDocument
from connectors.files import FilesConnector
from server.embeddings.base import Embedder
from server.ingest.chunking import Chunker
from server.ingest.sources import connector_context
from server.jobs.app import make_job_app
from server.jobs.enqueue import enqueue_sync
from server.jobs.tasks import recover_stalled_jobs
from server.jobs.worker import run_worker
from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents, run_row, sync_engine
from tests.jobs.conftest import target_of, write_notes

KB = str(Path(sys.executable).parent / "kb")
NOTES = 80


def expected_kb(settings: Settings, embedder: Embedder) -> dict[str, tuple[str, list[Any]]]:
    """What the KB must hold for the folder as it is now: hash and chunks per document."""
    config = settings.sources[0]
    connector = FilesConnector(config, connector_context(settings))
    chunker = Chunker(embedder)
    out = {}
    for item in connector.full_load():
        assert isinstance(item, SourceDocument)
        chunks = [(c.heading, c.text) for c in chunker.chunk_document(item)]
        out[item.external_id] = (item.content_hash, chunks)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_mid_sync_then_recovery_and_rerun_match_the_source(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "notes"
    write_notes(root, NOTES, paragraphs=4)
    source = {"name": "notes", "kind": "files", "root": str(root)}
    settings = make_settings(sources=[source], ingest={"embed_batch_size": 8})
    assert settings.database.url is not None
    config_file = tmp_path / "kb.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "database": {"url": settings.database.url.get_secret_value()},
                "embedding": {"threads": 1},
                "ingest": {"embed_batch_size": 8},
                "sources": [source],
            }
        )
    )
    target = target_of(settings)
    with sync_engine(settings) as engine:
        queued = enqueue_sync(settings, target, engine, "notes")
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"
        }
        env.update(KB_CONFIG=str(config_file), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen([KB, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:

            def committed() -> bool:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
                return int(run_row(engine, queued.run_id)["docs_added"]) >= 3

            wait_for(committed, 240, "the worker to commit some documents")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
            log.close()

        crashed = run_row(engine, queued.run_id)
        assert crashed["status"] == "running" and 3 <= crashed["docs_added"] < NOTES
        partial = live_documents(engine, "notes")
        assert 3 <= len(partial) < NOTES
        assert not integrity_problems(engine)  # committed batches are whole
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT status FROM procrastinate_jobs WHERE id = :i"),
                    {"i": queued.job_id},
                ).scalar_one()
                == "doing"
            )

        # The source changes while nobody is looking: deletions, edits, additions.
        for i in (0, 1, 79):
            (root / f"note-{i:03d}.md").unlink()
        for i in (2, 60):
            (root / f"note-{i:03d}.md").write_text(f"# Note {i}\n\nRewritten after the crash.\n")
        write_notes(tmp_path / "extra", 2)
        for p in (tmp_path / "extra").iterdir():
            p.rename(root / f"extra-{p.name}")

        time.sleep(1.5)  # the dead worker's heartbeat goes stale

        async def recover() -> int:
            app = make_job_app(target)
            async with app.open_async():
                return await recover_stalled_jobs(app, engine, seconds_since_heartbeat=1)

        assert asyncio.run(recover()) == 1
        interrupted = run_row(engine, queued.run_id)
        assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]

        # The re-run: a worker picks up the requeued job, then stops when the queue is empty.
        asyncio.run(
            run_worker(
                settings, target, embedder=embedder, wait=False, install_signal_handlers=False
            )
        )

        with engine.connect() as conn:
            job_status = conn.execute(
                text("SELECT status FROM procrastinate_jobs WHERE id = :i"), {"i": queued.job_id}
            ).scalar_one()
            last = conn.execute(
                text("SELECT id FROM ingest_runs WHERE source = 'notes' ORDER BY id DESC LIMIT 1")
            ).scalar_one()
        rerun = run_row(engine, last)
        assert job_status == "succeeded"
        assert rerun["status"] == "succeeded" and rerun["trigger"] == "retry"
        # Documents committed before the crash and untouched since were not embedded again.
        assert rerun["docs_unchanged"] >= len(partial) - 5

        expected = expected_kb(settings, embedder)
        actual = live_documents(engine, "notes")
        assert set(actual) == set(expected)
        for ext, (content_hash, chunks) in expected.items():
            assert actual[ext]["content_hash"] == content_hash, ext
            assert actual[ext]["chunks"] == chunks, ext
        assert not integrity_problems(engine)
        with engine.connect() as conn:
            dupes = conn.execute(
                text("SELECT count(*) - count(DISTINCT (source, external_id)) FROM documents")
            ).scalar_one()
        assert dupes == 0
