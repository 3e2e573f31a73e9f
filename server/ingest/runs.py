"""Ingest-run accounting: one ``ingest_runs`` row per run, one ``ingest_failures`` row per
document that could not be read.

Counters accumulate in memory as the pipeline goes and are written *in the same
transaction* as the batch of documents they describe, so after a crash the stored counts
describe exactly what was committed. Statuses: queued -> running -> succeeded | failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func

from server.ingest import repository
from server.ingest.issues import failing_view

COUNTERS = (
    "docs_seen",
    "docs_added",
    "docs_updated",
    "docs_unchanged",
    "docs_deleted",
    "docs_failed",
    "chunks_written",
    "bytes_read",
    "acl_updated",
)
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
MAX_REASON_CHARS = 2000


@dataclass
class RunCounts:
    docs_seen: int = 0
    docs_added: int = 0
    docs_updated: int = 0
    docs_unchanged: int = 0
    docs_deleted: int = 0
    docs_failed: int = 0
    chunks_written: int = 0
    bytes_read: int = 0
    # Documents whose authorization or place changed with their text unchanged: applied
    # to the stored rows and chunks without parsing or embedding.
    acl_updated: int = 0

    def add(self, other: RunCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunCounts:
        return cls(**{name: int(row.get(name) or 0) for name in COUNTERS})


@dataclass
class RunRecorder:
    """Counts and failures of one run, flushed with each committed batch."""

    run_id: int
    pending: RunCounts = field(default_factory=RunCounts)
    committed: RunCounts = field(default_factory=RunCounts)
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    def failed(self, external_id: str, uri: str, reason: str) -> None:
        self.pending.docs_failed += 1
        self.failures.append((external_id, uri, reason[:MAX_REASON_CHARS]))

    def flush(self, conn: Connection) -> None:
        """Write the pending deltas and failures inside the caller's transaction."""
        repository.add_run_counts(conn, self.run_id, self.pending.as_dict())
        repository.add_failures(conn, self.run_id, self.failures)

    def committed_ok(self) -> None:
        """Call after the transaction of :meth:`flush` committed."""
        self.committed.add(self.pending)
        self.pending = RunCounts()
        self.failures = []

    @property
    def total(self) -> RunCounts:
        out = RunCounts()
        out.add(self.committed)
        out.add(self.pending)
        return out


def create_queued_run(engine: Engine, source: str, *, trigger: str) -> int:
    with engine.begin() as conn:
        return repository.create_run(conn, source, trigger=trigger)


def start_run(
    conn: Connection,
    source: str,
    *,
    run_id: int | None,
    trigger: str,
    worker: str | None,
    job_id: int | None,
    cursor_before: Mapping[str, Any] | None,
) -> int:
    """Mark a queued run running, or create a new running one (inline, retried, scheduled)."""
    if run_id is not None:
        row = repository.get_run(conn, run_id)
        if row is not None and row["status"] == "queued" and row["source"] == source:
            repository.update_run(
                conn,
                run_id,
                status="running",
                started_at=func.now(),
                heartbeat_at=func.now(),
                worker=worker,
                job_id=job_id if job_id is not None else row["job_id"],
                cursor_before=dict(cursor_before or {}),
            )
            return run_id
    new_id = repository.create_run(conn, source, trigger=trigger, status="running")
    repository.update_run(
        conn, new_id, worker=worker, job_id=job_id, cursor_before=dict(cursor_before or {})
    )
    return new_id


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    status: str,
    error: str | None = None,
    cursor_after: Mapping[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "finished_at": func.now(),
        "heartbeat_at": func.now(),
    }
    if error is not None:
        values["error"] = error[:MAX_REASON_CHARS]
    if cursor_after is not None:
        values["cursor_after"] = dict(cursor_after)
    with engine.begin() as conn:
        repository.update_run(conn, run_id, **values)


def fail_interrupted_runs(conn: Connection, job_ids: list[int], reason: str) -> list[int]:
    """Mark the running (or queued) runs of these procrastinate jobs failed."""
    ids = repository.runs_of_jobs(conn, job_ids, ("running",))
    for run_id in ids:
        repository.update_run(conn, run_id, status="failed", error=reason, finished_at=func.now())
    return ids


WATCH_INTERRUPTED = "interrupted: the worker watching this source stopped (killed or crashed)"


def fail_orphaned_watch_runs(conn: Connection, source: str, *, worker: str) -> list[int]:
    """Runs a previous watcher left running (it died mid-sync): called by the new holder of
    the source's watch, which no other process can be running a watched sync under."""
    ids = repository.running_runs(conn, source, trigger="watch", not_worker=worker)
    for run_id in ids:
        repository.update_run(
            conn, run_id, status="failed", error=WATCH_INTERRUPTED, finished_at=func.now()
        )
    return ids


def run_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run as the CLI and the admin API show it (JSON-friendly, with its duration)."""
    started: datetime | None = row.get("started_at")
    finished: datetime | None = row.get("finished_at")
    running = finished is None and row["status"] == "running"
    # A running job's duration is the time elapsed so far, not up to its last heartbeat
    # (which is the start itself until the first batch commits).
    end = datetime.now(UTC) if running else (finished or row.get("heartbeat_at"))
    duration = (end - started).total_seconds() if started and end else None
    out = {
        "id": int(row["id"]),
        "source": row["source"],
        "status": row["status"],
        "trigger": row["trigger"],
        "job_id": row["job_id"],
        "worker": row["worker"],
        "queued_at": _iso(row.get("queued_at")),
        "started_at": _iso(started),
        "heartbeat_at": _iso(row.get("heartbeat_at")),
        "finished_at": _iso(finished),
        "duration_s": round(duration, 3) if duration is not None else None,
        "error": row["error"],
    }
    out.update(RunCounts.from_row(row).as_dict())
    after = row.get("cursor_after")
    if isinstance(after, Mapping) and "failing" in after:
        # Documents still failing when the run ended, whether or not this run read them.
        issues = failing_view(after, limit=0)
        out["still_failing"] = issues["failing_count"]
        out["truncated_documents"] = issues["truncated_count"]
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


__all__ = [
    "COUNTERS",
    "FINAL_STATUSES",
    "RunCounts",
    "RunRecorder",
    "create_queued_run",
    "fail_interrupted_runs",
    "fail_orphaned_watch_runs",
    "finish_run",
    "run_view",
    "start_run",
]
