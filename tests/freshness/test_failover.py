"""Watcher failover: two ``kb worker`` processes watch the same folder; exactly one holds
the watch; ``kill -9`` of the holder hands it to the other, which applies the changes made
while nobody watched (catch-up from the stored cursor) and then follows new ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from server.settings import Settings
from tests.ingest.helpers import integrity_problems, live_documents

pytestmark = pytest.mark.slow

KB = str(Path(sys.executable).parent / "kb")
DEADLINE_S = 240.0  # generous: each worker loads the model on a shared, loaded machine


def _wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _holder(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT watcher FROM source_freshness WHERE source = 'share'")
        ).scalar_one_or_none()


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([KB, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_kill_9_of_the_watching_worker_hands_the_watch_over_losing_nothing(
    tmp_path: Path, make_settings: Callable[..., Settings], engine: Engine
) -> None:
    root = tmp_path / "share"
    (root / "hr").mkdir(parents=True)
    (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:hr, group:staff]\n")
    for i in range(4):
        (root / "hr" / f"memo{i}.md").write_text(f"# Memo {i}\n\nHR memo {i}.")
    source: dict[str, Any] = {
        "name": "share",
        "kind": "files",
        "root": str(root),
        "acl": ["group:eng"],
        "watch": True,
        "watch_debounce_ms": 100,
    }
    settings = make_settings(sources=[source])
    assert settings.database.url is not None
    config = tmp_path / "kb.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "database": {"url": settings.database.url.get_secret_value()},
                "embedding": {"threads": 1},
                "log_level": "INFO",
                "sources": [source],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    env.update(KB_CONFIG=str(config), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [_start_worker(env, logs[0])]
    try:
        _wait_for(lambda: len(live_documents(engine, "share")) == 4, "the first worker's catch-up")
        first = _holder(engine)
        assert first is not None and first.endswith(f":{workers[0].pid}")

        workers.append(_start_worker(env, logs[1]))
        _wait_for(lambda: "1 watched" in logs[1].read_text(errors="replace"), "worker B up")
        time.sleep(6)  # B has tried the lock at least once, and failed: A holds it
        assert _holder(engine) == first

        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(30)
        # Changes made while nobody watches: a tighter ACL, a new file, a deleted one.
        (root / "hr" / ".kb-acl.yaml").write_text("acl: [group:hr]\n")
        (root / "new.md").write_text("# New\n\nWritten while nobody watched.")
        (root / "hr" / "memo3.md").unlink()

        second_name = f":{workers[1].pid}"

        def taken_over_and_applied() -> bool:
            assert workers[1].poll() is None, logs[1].read_text(errors="replace")[-3000:]
            holder = _holder(engine)
            docs = live_documents(engine, "share")
            hr = [d for e, d in docs.items() if e.startswith("hr/")]
            return (
                holder is not None
                and holder.endswith(second_name)
                and "new.md" in docs
                and len(hr) == 3
                and all(d["acl"] == ["group:hr"] for d in hr)
            )

        _wait_for(taken_over_and_applied, "worker B to take the watch and catch up")

        # And B follows new changes by itself from then on.
        (root / "later.md").write_text("# Later\n\nAfter the takeover.")
        _wait_for(lambda: "later.md" in live_documents(engine, "share"), "B to apply an event")
        assert integrity_problems(engine) == []
        with engine.connect() as conn:
            # A run the killed worker left running (if it died mid-sync) is failed by B.
            stuck = conn.execute(
                text("SELECT count(*) FROM ingest_runs WHERE worker = :w AND status = 'running'"),
                {"w": first},
            ).scalar_one()
        assert stuck == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(10)
