"""One sync of one source, start to finish: the entry point every door uses.

The worker task, ``kb sync --inline`` and ``kb serve --load-examples`` all call
:func:`run_sync`. It refreshes the configured sources, takes a per-source advisory lock
(so an inline run and a worker run of one source never interleave, whatever procrastinate
knows), records the run, drives the :class:`~server.ingest.pipeline.Pipeline`, and closes
the run as succeeded or failed with a clear error. Blocking: call it from a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from core.errors import DatabaseUnavailable, InvalidRequest, KBError
from server.embeddings.base import Embedder
from server.ingest import crash_guard, freshness, repository, runs
from server.ingest.chunking import Chunker
from server.ingest.crash_guard import CrashGuard
from server.ingest.issues import DocumentIssues
from server.ingest.pipeline import DEFAULT_BATCH_CHUNKS, Pipeline, PipelineOptions, sync_state
from server.ingest.runs import RunCounts, RunRecorder
from server.ingest.sources import open_connector, resolve_config, upsert_configured_sources
from server.settings import Settings

log = logging.getLogger(__name__)

LOCK_NAMESPACE = "kb.sync:"


class SyncBusy(InvalidRequest):
    """Another sync of the same source is running (in a worker or inline)."""


class SourceDisabled(InvalidRequest):
    """The source is disabled in its configuration."""


@dataclass(frozen=True)
class SyncResult:
    run_id: int
    status: str
    counts: RunCounts
    error: str | None = None


def run_sync(
    settings: Settings,
    engine: Engine,
    embedder: Embedder,
    name: str,
    *,
    run_id: int | None = None,
    trigger: str = "manual",
    full: bool = False,
    worker: str | None = None,
    job_id: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_commit: Callable[[RunCounts], None] | None = None,
    scan_deletions: bool = True,
    change_seen_at: datetime | None = None,
    latency_first: bool = False,
) -> SyncResult:
    """Sync ``name`` now. Raises on a failed run (after recording it), so job retries see it.

    ``scan_deletions`` false skips the comparison of every id at the source with the index
    (a watcher whose probe says no key went). ``change_seen_at``: when the change that
    prompted this run happened at the source (a watcher knows); it dates the source's
    freshness, whose lag is then measured to this run's commit. ``latency_first``: a small
    run that should finish soon rather than leave the CPU to the model (watchers)."""
    started_at = datetime.now(UTC)
    with engine.begin() as conn:
        upsert_configured_sources(conn, settings)
        config = resolve_config(conn, settings, name)
    if not config.enabled:
        raise SourceDisabled(f"source {name!r} is disabled")
    with engine.connect() as lock_conn:
        if not _try_lock(lock_conn, name):
            raise SyncBusy(f"a sync of source {name!r} is already running")
        try:
            result = _locked_sync(
                settings,
                engine,
                embedder,
                name,
                config_kind=config.kind,
                run_id=run_id,
                trigger=trigger,
                full=full,
                worker=worker,
                job_id=job_id,
                on_start=on_start,
                on_commit=on_commit,
                config=config,
                scan_deletions=scan_deletions,
                latency_first=latency_first,
            )
        finally:
            _unlock(lock_conn, name)
    if _changed_anything(result.counts):
        try:
            with engine.begin() as conn:
                freshness.record_change(
                    conn,
                    name,
                    change_at=change_seen_at or started_at,
                    searchable_at=datetime.now(UTC),
                    known=change_seen_at is not None,
                )
        except DBAPIError:
            log.warning("could not record the freshness of %s", name, exc_info=True)
    return result


def _changed_anything(c: RunCounts) -> bool:
    return bool(c.docs_added or c.docs_updated or c.docs_deleted or c.acl_updated)


def _locked_sync(
    settings: Settings,
    engine: Engine,
    embedder: Embedder,
    name: str,
    *,
    config_kind: str,
    run_id: int | None,
    trigger: str,
    full: bool,
    worker: str | None,
    job_id: int | None,
    on_start: Callable[[int], None] | None,
    on_commit: Callable[[RunCounts], None] | None,
    config: Any,
    scan_deletions: bool = True,
    latency_first: bool = False,
) -> SyncResult:
    with engine.begin() as conn:
        # A marker left by a worker that died mid-parse becomes a "crashed" entry first.
        crash_guard.recover(conn, name)
        source = repository.get_source(conn, name)
        state = dict(source.sync_state) if source else {}
        run_id = runs.start_run(
            conn,
            name,
            run_id=run_id,
            trigger=trigger,
            worker=worker,
            job_id=job_id,
            cursor_before=state,
        )
    if on_start is not None:
        on_start(run_id)
    log.info("sync of %s (%s) started as run %d", name, config_kind, run_id)
    recorder = RunRecorder(run_id)
    issues = DocumentIssues.from_state(state, run_id)
    guard = CrashGuard(engine, name, issues.crashed)
    ingest = settings.ingest
    batch = settings.ingest.embed_batch_size or max(
        DEFAULT_BATCH_CHUNKS, settings.embedding.batch_size
    )
    pipeline = Pipeline(
        engine,
        embedder,
        Chunker(embedder, settings.embedding.max_tokens),
        source=name,
        recorder=recorder,
        options=PipelineOptions(
            batch_chunks=batch,
            full=full,
            max_document_chars=ingest.max_document_chars,
            max_chunks_per_document=ingest.max_chunks_per_document,
            scan_deletions=scan_deletions,
            yield_cpu=not latency_first,
        ),
        on_commit=on_commit,
        issues=issues,
    )
    try:
        connector = open_connector(config, settings, parse_guard=guard)
        outcome = pipeline.run(connector, state.get("cursor"))
    except BaseException as exc:
        message = _failure_message(exc)
        log.warning("sync of %s failed (run %d): %s", name, run_id, message)
        try:
            runs.finish_run(engine, run_id, status="failed", error=message)
        except DBAPIError:
            log.exception("could not record the failure of run %d", run_id)
        if isinstance(exc, DBAPIError | psycopg.Error):
            raise DatabaseUnavailable(
                f"the knowledge-base database failed during the sync: {message}"
            ) from None
        raise
    final_state = pipeline.final_state or sync_state(outcome.cursor, issues)
    runs.finish_run(engine, run_id, status="succeeded", cursor_after=final_state)
    if issues.failing:
        log.warning(
            "source %s: %d documents are failing (kb sources show %s)",
            name,
            len(issues.failing),
            name,
        )
    c = outcome.counts
    log.info(
        "sync of %s done (run %d, %s): %d seen, %d added, %d updated, %d unchanged, "
        "%d deleted, %d failed, %d chunks, %d authorization-only",
        name,
        run_id,
        outcome.mode,
        c.docs_seen,
        c.docs_added,
        c.docs_updated,
        c.docs_unchanged,
        c.docs_deleted,
        c.docs_failed,
        c.chunks_written,
        c.acl_updated,
    )
    return SyncResult(run_id, "succeeded", outcome.counts)


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, KBError):
        return exc.message
    if isinstance(exc, DBAPIError | psycopg.Error):
        # Our own database failed (COPY runs on the raw psycopg connection, hence both).
        orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        return f"{orig.__class__.__name__}: {first}"[:500]
    if isinstance(exc, Exception):
        return f"internal error: {exc.__class__.__name__}"
    return f"interrupted ({exc.__class__.__name__})"


def _try_lock(conn: Connection, name: str) -> bool:
    got = conn.execute(
        text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"),
        {"key": LOCK_NAMESPACE + name},
    ).scalar_one()
    conn.commit()
    return bool(got)


def _unlock(conn: Connection, name: str) -> None:
    try:
        conn.execute(
            text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"),
            {"key": LOCK_NAMESPACE + name},
        )
        conn.commit()
    except DBAPIError:
        log.warning("releasing the sync lock of %s failed", name, exc_info=True)


__all__ = ["SourceDisabled", "SyncBusy", "SyncResult", "run_sync"]
