"""Three ``kb worker`` processes on one procrastinate queue, one killed with SIGKILL mid-sync.

Proven on real processes and the real queue:

* no source is synced by two workers at once: a second sync of a running source waits for
  the first (the job's ``lock``), and a second sync of a *queued* source is refused (its
  ``queueing_lock``); the runs of each source never overlap in time;
* the killed worker's job goes back to the queue by itself (the surviving workers' periodic
  stalled-job task) and another worker finishes it;
* nothing lost, nothing twice: every file of every source is one live document with its
  chunks, and the database invariants hold.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from server.jobs.enqueue import SyncAlreadyQueued, enqueue_sync
from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents, sync_engine
from tests.jobs.conftest import target_of, write_notes

pytestmark = pytest.mark.slow

KB = str(Path(sys.executable).with_name("kb"))
SOURCES = 6
NOTES = 12
WORKERS = 3


def worker_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    env.update(KB_CONFIG=str(config), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


@contextmanager
def workers(config: Path, logs: Path, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``kb worker`` processes; stopped with SIGTERM (killed if they hang)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            with (logs / f"worker-{i}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [KB, "worker"], env=worker_env(config), stdout=out, stderr=subprocess.STDOUT
                    )
                )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, logs: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text_ = "\n".join(p.read_text(errors="replace")[-1500:] for p in logs.glob("*.log"))
            raise AssertionError(f"timed out waiting for {what}\n{text_}")
        time.sleep(0.2)


def rows(engine: Engine, query: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(query), params).mappings()]


def pid_of(worker_name: str) -> int:
    """``kb-worker@host:pid`` -> pid."""
    return int(worker_name.rsplit(":", 1)[1])


def test_three_workers_one_killed_no_overlap_nothing_lost_or_doubled(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    names = [f"team-{i}" for i in range(SOURCES)]
    sources: list[dict[str, Any]] = []
    for name in names:
        write_notes(tmp_path / name, NOTES, paragraphs=3)
        sources.append({"name": name, "kind": "files", "root": str(tmp_path / name)})
    settings = make_settings(sources=sources, ingest={"embed_batch_size": 8})
    assert settings.database.url is not None
    config = tmp_path / "kb.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "log_level": "INFO",
                "database": {"url": settings.database.url.get_secret_value()},
                "embedding": {"threads": 1},
                "ingest": {"embed_batch_size": 8},
                "sources": sources,
            }
        )
    )
    target = target_of(settings)
    logs = tmp_path / "logs"
    logs.mkdir()
    with sync_engine(settings) as engine, workers(config, logs, WORKERS) as procs:
        first = {name: enqueue_sync(settings, target, engine, name) for name in names}

        # Kill the worker of a run that has committed part of its source.
        def partly_done() -> dict[str, Any] | None:
            assert all(p.poll() is None for p in procs), "a worker died by itself"
            running = rows(
                engine,
                "SELECT * FROM ingest_runs WHERE status = 'running' AND docs_added >= 2 "
                "AND docs_added < :n ORDER BY id LIMIT 1",
                n=NOTES,
            )
            return running[0] if running else None

        victim_run = wait_for(partly_done, 300, "a run with committed documents", logs)
        victim = next(p for p in procs if p.pid == pid_of(victim_run["worker"]))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        killed_at = time.time()
        victim_source = victim_run["source"]
        victim_job = first[victim_source].job_id

        # A second sync of every other source: refused while the first is still queued
        # (queueing lock), waits behind a running one (lock).
        others = [name for name in names if name != victim_source]
        second: dict[str, int] = {}
        refused: list[str] = []
        waited_behind_running: list[str] = []

        def first_status(name: str) -> str:
            return str(
                rows(
                    engine,
                    "SELECT status FROM procrastinate_jobs WHERE id = :i",
                    i=first[name].job_id,
                )[0]["status"]
            )

        def enqueue_second(name: str) -> None:
            status = first_status(name)  # read before: a first job never returns to todo
            try:
                second[name] = enqueue_sync(settings, target, engine, name).job_id
            except SyncAlreadyQueued:
                assert status == "todo", (name, status)
                refused.append(name)

        for name in others:
            if first_status(name) == "todo":
                enqueue_second(name)

        # Then, for a source whose first sync is running: its second is accepted and waits.
        # Decided by the first job's status *after* the enqueue, so no race can count a
        # second sync as waiting when the first had already finished.
        def a_running_first() -> str | None:
            for name in others:
                if name not in second and first_status(name) == "doing":
                    return name
            return None

        while not waited_behind_running:
            running = wait_for(a_running_first, 120, "a first sync running", logs)
            second[running] = enqueue_sync(settings, target, engine, running).job_id
            if first_status(running) == "doing":
                waited_behind_running.append(running)
        for name in others:
            if name not in second and name not in refused:
                enqueue_second(name)

        def all_finished() -> bool:
            alive = [p for p in procs if p is not victim]
            assert all(p.poll() is None for p in alive), "a surviving worker died"
            open_jobs = rows(
                engine,
                "SELECT id FROM procrastinate_jobs WHERE task_name = 'kb.sync_source' "
                "AND status NOT IN ('succeeded', 'failed', 'cancelled', 'aborted')",
            )
            return not open_jobs

        # The stalled-job task runs every minute and takes a worker silent for 30 s as dead.
        wait_for(all_finished, 600, "every sync job to finish", logs)

        jobs = rows(
            engine,
            "SELECT id, status, attempts, args FROM procrastinate_jobs "
            "WHERE task_name = 'kb.sync_source' ORDER BY id",
        )
        runs = rows(engine, "SELECT * FROM ingest_runs ORDER BY id")

    assert {j["status"] for j in jobs} == {"succeeded"}, jobs
    assert len(jobs) == SOURCES + len(second)
    # The killed worker's job was retried, and finished by another worker.
    retried = next(j for j in jobs if j["id"] == victim_job)
    assert retried["attempts"] >= 1
    of_victim = [r for r in runs if r["source"] == victim_source]
    assert [(r["status"], r["worker"] == victim_run["worker"]) for r in of_victim] == [
        ("failed", True),
        ("succeeded", False),
    ], of_victim
    assert "interrupted" in of_victim[0]["error"] and of_victim[1]["trigger"] == "retry"
    assert of_victim[1]["started_at"].timestamp() > killed_at
    assert len({r["worker"] for r in runs if r["status"] == "succeeded"}) >= 2

    # No source ran twice at once: each source's runs are disjoint in time.
    assert waited_behind_running, "no second sync was queued behind a running one"
    assert refused, "no second sync was refused while the first was queued"
    for name in names:
        mine = sorted((r for r in runs if r["source"] == name), key=lambda r: r["started_at"])
        assert len(mine) == (2 if name in second or name == victim_source else 1), mine
        for earlier, later in zip(mine, mine[1:], strict=False):
            assert earlier["finished_at"] <= later["started_at"], (name, earlier, later)

    # Nothing lost, nothing twice.
    with sync_engine(settings) as engine:
        for name in names:
            live = live_documents(engine, name)
            assert set(live) == {f"note-{i:03d}.md" for i in range(NOTES)}, (name, set(live))
            assert all(doc["chunks"] for doc in live.values())
        assert not integrity_problems(engine)
        dupes = rows(
            engine,
            "SELECT count(*) - count(DISTINCT (source, external_id)) AS n FROM documents",
        )[0]["n"]
        assert dupes == 0
