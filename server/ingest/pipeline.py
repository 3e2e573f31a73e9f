"""The ingestion pipeline: read -> parse -> chunk -> embed in batches -> upsert.

Why sync code on threads (with a sync SQLAlchemy engine) rather than asyncio: every stage
is blocking by nature (connector drivers and parsers, the tokenizer, model inference), so
an async pipeline would only hop between the loop and threads for each step. Instead two
threads run side by side, and callers on an event loop run :func:`run_sync` through
``asyncio.to_thread``:

* the *reader* thread iterates the connector (which parses), compares each document's
  content hash with the stored one (unchanged documents stop here: never re-chunked nor
  re-embedded), then its text hash (same text, new ACL, collection, path, level or
  metadata: an authorization-only update of the stored document and its chunks' columns,
  in place, counted as ``acl_updated``; connectors that can tell without parsing yield a
  ``PlacementChange`` instead) and chunks the changed ones;
* the *writer* (the calling thread) gathers chunks across documents into batches of about
  ``batch_chunks``, embeds a batch with the blocking :class:`Embedder`, then writes it in
  one transaction: document rows upserted, their old chunks deleted, the new chunks
  inserted with ``COPY``, the run counters and failure rows, and on the last batch the
  deletions and the source cursor.

So the model is busy while the next batch is read and chunked, and the database write is
a bulk statement per batch: embedding stays the dominant cost. A crash loses at most the
uncommitted batch; the rerun skips what was committed (same hashes) and converges.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, func

from connectors.base import (
    Connector,
    FailedDocument,
    Item,
    PlacementChange,
    Section,
    SourceDocument,
    authorization_hash,
    placement_hash,
)
from core.errors import ConnectorError, KBError
from server.embeddings.base import Embedder
from server.ingest import repository
from server.ingest.chunking import Chunker, ChunkText
from server.ingest.issues import DocumentIssues
from server.ingest.repository import (
    STALE_HASH,
    DocumentWrite,
    HashBackfill,
    Reauthorization,
    StoredDocument,
)
from server.ingest.runs import RunCounts, RunRecorder
from server.observability.metrics import timed_document_batches

log = logging.getLogger(__name__)

DEFAULT_BATCH_CHUNKS = 128
MAX_BATCH_DOCUMENTS = 512
COUNTS_FLUSH_S = 2.0  # progress of unchanged/failed documents reaches the run row this often
# Read-ahead of the reader, in documents: a few batches keep the model busy; more would only
# hold parsed documents in memory (and read the source further ahead of what is committed).
READ_AHEAD_BATCHES = 4
# Nice value of the reader (parse + chunk) thread; the model threads keep priority 0.
READER_NICENESS = 10
MIN_READ_AHEAD = 64


@dataclass(frozen=True)
class PipelineOptions:
    batch_chunks: int = DEFAULT_BATCH_CHUNKS
    full: bool = False  # full load (deletions by what was seen) instead of poll + scan
    max_document_chars: int = 2_000_000  # longer text is stored truncated
    max_chunks_per_document: int = 2_000  # further chunks are dropped (stored truncated)
    # Poll mode: ask the connector for every id at the source and delete what is gone.
    # A watcher turns it off for polls whose cheap probe says no row can have gone.
    scan_deletions: bool = True
    # Lower the reader thread's priority so parsing yields the CPU to the model (throughput
    # of big runs). A watcher's small runs turn it off: on a busy machine a niced reader
    # waits behind every other process, and what counts there is the time to searchable.
    yield_cpu: bool = True


@dataclass
class SyncOutcome:
    counts: RunCounts
    cursor: Mapping[str, Any] | None
    mode: str


@dataclass(frozen=True)
class _Changed:
    doc: SourceDocument
    content_hash: str
    chunks: list[ChunkText]
    is_new: bool
    truncated: str | None = None  # why the stored text is shorter than the source's


@dataclass(frozen=True)
class _Unchanged:
    size_bytes: int
    external_id: str = ""
    # Seen earlier in this run with the same content (a source's catch-up pass re-reads
    # rows): not counted again.
    repeat: bool = False
    backfill: HashBackfill | None = None  # hashes to bring up to date (no content change)


@dataclass(frozen=True)
class _Reauthorized:
    """Same text as stored, new authorization or place: no chunking, no embedding."""

    change: Reauthorization
    size_bytes: int


@dataclass(frozen=True)
class _End:
    keep: set[str] | None  # ids that exist at the source (poll mode); None: use what was seen
    cursor: Mapping[str, Any] | None
    mode: str
    skip_deletions: bool = False  # poll without a deletion scan: delete nothing


@dataclass(frozen=True)
class _Crash:
    error: BaseException


_Message = _Changed | _Unchanged | _Reauthorized | FailedDocument | _End | _Crash


@dataclass
class _Batch:
    docs: dict[str, _Changed] = field(default_factory=dict)
    chunks: int = 0
    # Failed documents whose stored version gets the source's new placement (or goes).
    failed: list[FailedDocument] = field(default_factory=list)
    # Applied after ``docs`` in the same transaction (a later authorization of a document
    # written earlier in the batch lands on the new version).
    reauth: dict[str, Reauthorization] = field(default_factory=dict)
    backfill: list[HashBackfill] = field(default_factory=list)

    def add(self, item: _Changed) -> None:
        # The same id twice in a batch (a poll window overlap): the later version wins.
        old = self.docs.pop(item.doc.external_id, None)
        if old is not None:
            self.chunks -= len(old.chunks)
        self.reauth.pop(item.doc.external_id, None)
        self.docs[item.doc.external_id] = item
        self.chunks += len(item.chunks)

    def add_reauth(self, change: Reauthorization) -> None:
        self.reauth.pop(change.external_id, None)
        self.reauth[change.external_id] = change

    @property
    def size(self) -> int:
        return len(self.docs) + len(self.reauth) + len(self.backfill)


class Pipeline:
    """Runs one sync of one source. Not reusable: build one per run."""

    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        chunker: Chunker,
        *,
        source: str,
        recorder: RunRecorder,
        options: PipelineOptions | None = None,
        on_commit: Callable[[RunCounts], None] | None = None,
        issues: DocumentIssues | None = None,
    ) -> None:
        self.engine = engine
        self.embedder = embedder
        self.chunker = chunker
        self.source = source
        self.recorder = recorder
        self.options = options or PipelineOptions()
        self.on_commit = on_commit
        self._stop = threading.Event()
        depth = max(MIN_READ_AHEAD, READ_AHEAD_BATCHES * self.options.batch_chunks)
        self._queue: queue.Queue[_Message] = queue.Queue(maxsize=depth)
        self._index: dict[str, StoredDocument] = {}
        self._seen: dict[str, str | None] = {}  # external id -> hash seen this run (None: failed)
        self._text_seen: dict[str, str] = {}  # external id -> text hash written this run
        self._written: set[str] = set()
        # Failing and truncated documents of the source, carried from the last run.
        self.issues = issues or DocumentIssues()
        self.final_state: dict[str, Any] | None = None  # sync_state saved by the last batch

    # ------------------------------------------------------------------ entry point

    def run(self, connector: Connector, cursor: Mapping[str, Any] | None) -> SyncOutcome:
        with self.engine.connect() as conn:
            self._index = repository.document_index(conn, self.source)
        reader = threading.Thread(
            target=self._read, args=(connector, cursor), name=f"ingest-read-{self.source}"
        )
        reader.start()
        try:
            return self._write_loop()
        finally:
            self._stop.set()
            self._drain()
            reader.join()

    # ------------------------------------------------------------------ reader thread

    def _read(self, connector: Connector, cursor: Mapping[str, Any] | None) -> None:
        if self.options.yield_cpu:
            _yield_cpu_to_the_model()
        try:
            connector.check()
            items, next_cursor, mode = self._items(connector, cursor)
            for item in items:
                if self._stop.is_set():
                    return
                self._put(self._classify(item))
            scan = mode == "poll" and self.options.scan_deletions
            keep = connector.scan_ids() if scan else None
            skip = mode == "poll" and not scan
            self._put(_End(keep=keep, cursor=next_cursor, mode=mode, skip_deletions=skip))
        except BaseException as exc:
            self._put(_Crash(exc))
        finally:
            try:
                connector.close()
            except Exception:
                log.warning("closing the connector of %s failed", self.source, exc_info=True)

    def _items(
        self, connector: Connector, cursor: Mapping[str, Any] | None
    ) -> tuple[Iterator[Item], Mapping[str, Any] | None, str]:
        if not self.options.full:
            try:
                items, next_cursor = connector.poll(cursor)
                return iter(items), next_cursor, "poll"
            except NotImplementedError:
                pass
        return iter(connector.full_load()), None, "full"

    def _classify(self, item: Item) -> _Message:
        if isinstance(item, FailedDocument):
            self._seen.setdefault(item.external_id, None)
            return item
        if isinstance(item, PlacementChange):
            return self._classify_placement(item)
        content_hash = item.content_hash
        text_hash = item.text_hash
        ext = item.external_id
        stored = self._index.get(ext)
        previous = self._seen.get(ext, "")
        self._seen[ext] = content_hash
        stored_live = not previous and stored is not None and stored.live
        if previous == content_hash or (
            stored_live
            and stored is not None
            and stored.content_hash in (content_hash, placement_hash(text_hash, item.authz_hash))
        ):
            backfill = None
            if stored is not None and not previous and _stale_hashes(stored, item, text_hash):
                backfill = HashBackfill(ext, content_hash, text_hash, item.base_metadata)
            return _Unchanged(
                item.size_bytes, ext, repeat=previous == content_hash, backfill=backfill
            )
        same_text = (
            stored_live
            and stored is not None
            and stored.text_hash == text_hash
            and stored.content_hash != STALE_HASH
        ) or (bool(previous) and self._text_seen.get(ext) == text_hash)
        if same_text:
            # Only who may read it (or where it lives) changed: the stored chunks and their
            # vectors stay; their authorization columns change with the document's.
            return _Reauthorized(
                Reauthorization(
                    external_id=ext,
                    uri=item.uri,
                    collection=item.collection,
                    path=item.path,
                    level=item.level,
                    acl=tuple(item.acl or ()),
                    metadata=dict(item.metadata),
                    content_hash=content_hash,
                    text_hash=text_hash,
                    size_bytes=item.size_bytes,
                    base_metadata=item.base_metadata,
                    modified_at=item.modified_at,
                    set_modified_at=True,
                ),
                item.size_bytes,
            )
        self._text_seen[ext] = text_hash
        item, truncated = _cap_text(item, self.options.max_document_chars)
        try:
            chunks = self.chunker.chunk_document(item)
        except Exception as exc:
            return FailedDocument(
                ext, item.uri, f"could not be split into chunks: {exc}", item.size_bytes
            )
        cap = self.options.max_chunks_per_document
        if len(chunks) > cap:
            truncated = (
                f"{len(chunks)} chunks, only the first {cap} kept (ingest.max_chunks_per_document)"
            )
            chunks = chunks[:cap]
        if truncated is not None:
            log.warning("source %s: document %r stored truncated: %s", self.source, ext, truncated)
            item = replace(item, metadata={**item.metadata, "truncated": truncated})
        is_new = previous == "" and (stored is None or not stored.live)
        return _Changed(item, content_hash, chunks, is_new, truncated)

    def _classify_placement(self, item: PlacementChange) -> _Message:
        """A new placement for content the connector says is unchanged: applied to the
        stored document when one is usable, else the document is read after all."""
        ext = item.external_id
        origin = item.moved_from or ext
        stored = self._index.get(origin)
        usable = (
            ext not in self._seen
            and origin not in self._seen
            and stored is not None
            and stored.live
            and stored.text_hash is not None
            and stored.base_metadata is not None
            and stored.content_hash != STALE_HASH
        )
        if not usable or stored is None or stored.text_hash is None:
            return self._classify(item.load())
        metadata = {**(stored.base_metadata or {}), **item.metadata}
        authz = authorization_hash(
            item.uri, item.collection, item.path, item.level, item.acl, metadata
        )
        content_hash = placement_hash(stored.text_hash, authz)
        self._seen[ext] = content_hash
        if item.moved_from is None and stored.content_hash == content_hash:
            return _Unchanged(item.size_bytes, ext)
        if item.moved_from is not None:
            # The old address is the new one's from now on (the end-of-run deletion of the
            # old id then finds nothing to delete).
            self._index[ext] = stored
        return _Reauthorized(
            Reauthorization(
                external_id=ext,
                uri=item.uri,
                collection=item.collection,
                path=item.path,
                level=item.level,
                acl=tuple(item.acl or ()),
                metadata=metadata,
                content_hash=content_hash,
                text_hash=stored.text_hash,
                size_bytes=item.size_bytes,
                moved_from=item.moved_from,
            ),
            item.size_bytes,
        )

    def _put(self, message: _Message) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.2)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ writer (this thread)

    def _write_loop(self) -> SyncOutcome:
        batch = _Batch()
        last_flush = time.monotonic()
        rec = self.recorder
        while True:
            message = self._queue.get()
            if isinstance(message, _Crash):
                raise _as_connector_error(self.source, message.error)
            if isinstance(message, _End):
                self._commit(batch, end=message)
                return SyncOutcome(rec.committed, message.cursor, message.mode)
            if isinstance(message, _Unchanged) and message.repeat:
                continue
            rec.pending.docs_seen += 1
            if isinstance(message, _Changed):
                rec.pending.bytes_read += message.doc.size_bytes
                batch.add(message)
            elif isinstance(message, _Unchanged):
                rec.pending.bytes_read += message.size_bytes
                rec.pending.docs_unchanged += 1
                self.issues.unchanged(message.external_id)
                if message.backfill is not None:
                    batch.backfill.append(message.backfill)
            elif isinstance(message, _Reauthorized):
                rec.pending.bytes_read += message.size_bytes
                batch.add_reauth(message.change)
            else:
                rec.pending.bytes_read += message.size_bytes
                rec.failed(message.external_id, message.uri, message.reason)
                self.issues.failed(message.external_id, message.uri, message.reason)
                if message.placement is not None or message.withdraw:
                    batch.failed.append(message)
            full = batch.chunks >= self.options.batch_chunks or batch.size >= MAX_BATCH_DOCUMENTS
            if full or time.monotonic() - last_flush > COUNTS_FLUSH_S:
                self._commit(batch)
                batch = _Batch()
                last_flush = time.monotonic()

    def _commit(self, batch: _Batch, end: _End | None = None) -> None:
        """Embed the batch (outside any transaction), then write everything in one."""
        docs = list(batch.docs.values())
        texts = [c.embedding_text for d in docs for c in d.chunks]
        vectors = self._embed(texts)
        writes = [_document_write(self.source, d) for d in docs]
        rec = self.recorder
        for d in docs:
            if d.is_new:
                rec.pending.docs_added += 1
            else:
                rec.pending.docs_updated += 1
        for d in docs:  # before _finish saves the map, in the same transaction as the docs
            self.issues.written(d.doc.external_id, truncated=d.truncated)
        reauth = list(batch.reauth.values())
        for r in reauth:
            self.issues.written(r.external_id, truncated=self.issues.truncated.get(r.external_id))
        with self.engine.begin() as conn:
            rec.pending.chunks_written += repository.replace_documents(conn, writes, vectors)
            rec.pending.acl_updated += repository.reauthorize_documents(conn, self.source, reauth)
            repository.backfill_hashes(conn, self.source, batch.backfill)
            self._apply_failed_placements(conn, batch.failed)
            if end is not None:
                self._finish(conn, end, written_now={d.doc.external_id for d in docs})
            rec.flush(conn)
        rec.committed_ok()
        self._written.update(d.doc.external_id for d in docs)
        if self.on_commit is not None:
            self.on_commit(rec.committed)

    @timed_document_batches  # kb_embedder_* throughput (/metrics)
    def _embed(self, texts: list[str]) -> Any:
        """Vectors for ``texts``, asked of the model ``batch_chunks`` at a time.

        One big document arrives as one batch (its chunks replace the old ones in one
        transaction); embedding it in slices bounds each model call, and the counters of
        what was read so far plus the run's heartbeat are committed while it goes, so the
        run shows progress within a document."""
        if not texts:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        step = max(1, self.options.batch_chunks)
        if len(texts) <= step:
            return self.embedder.embed_documents(texts)
        self._progress(0, len(texts))
        parts = []
        last = time.monotonic()
        for start in range(0, len(texts), step):
            parts.append(self.embedder.embed_documents(texts[start : start + step]))
            if time.monotonic() - last > COUNTS_FLUSH_S:
                self._progress(start + step, len(texts))
                last = time.monotonic()
        return np.concatenate(parts)

    def _progress(self, done: int, total: int) -> None:
        rec = self.recorder
        with self.engine.begin() as conn:
            rec.flush(conn)
            repository.update_run(conn, rec.run_id, heartbeat_at=func.now())
        rec.committed_ok()
        log.info("source %s: embedded %d of %d chunks of this batch", self.source, done, total)
        if self.on_commit is not None:
            self.on_commit(rec.committed)

    def _apply_failed_placements(self, conn: Connection, failed: list[FailedDocument]) -> None:
        """A document that now fails keeps serving its old text only under the source's
        current authorization and placement; without one it is withdrawn."""
        for item in failed:
            if item.withdraw or item.placement is None:
                if repository.mark_deleted(conn, self.source, [item.external_id]):
                    log.warning(
                        "source %s: %r withdrawn: it fails and its placement is unknown",
                        self.source,
                        item.external_id,
                    )
                continue
            p = item.placement
            repository.apply_placement(
                conn,
                self.source,
                item.external_id,
                collection=p.collection,
                path=p.path,
                level=p.level,
                acl=tuple(p.acl or ()),
            )

    def _finish(self, conn: Connection, end: _End, written_now: set[str]) -> None:
        """Deletions, and the count of documents the run left as they were."""
        live_before = {ext for ext, s in self._index.items() if s.live}
        if end.skip_deletions:
            keep = live_before | set(self._seen) | self._written | written_now
        else:
            keep = end.keep if end.keep is not None else set(self._seen)
        gone = sorted((live_before | self._written | written_now) - keep)
        deleted = repository.mark_deleted(conn, self.source, gone)
        self.recorder.pending.docs_deleted += deleted
        # Poll mode never yields documents the cursor says are unchanged: count them too.
        untouched = live_before - set(self._seen) - set(gone)
        self.recorder.pending.docs_unchanged += len(untouched)
        # The cursor commits with the last batch it covers: a crash before this point
        # replays the window (cheaply: committed documents hash as unchanged).
        self.issues.keep_only(keep | self._written | written_now)
        self.final_state = sync_state(end.cursor, self.issues)
        repository.save_sync_state(conn, self.source, self.final_state, success=True)
        repository.prune_document_changes(conn)


def _stale_hashes(stored: StoredDocument, item: SourceDocument, text_hash: str) -> bool:
    """The stored row predates what this version keeps (no text hash, a placement hash, or
    no base metadata where the connector now gives one)."""
    return (
        stored.text_hash != text_hash
        or stored.content_hash != item.content_hash
        or (item.base_metadata is not None and stored.base_metadata is None)
    )


def _cap_text(item: SourceDocument, limit: int) -> tuple[SourceDocument, str | None]:
    """The document with at most ``limit`` characters of text, and why it was cut."""
    total = sum(len(s.text) for s in item.sections)
    if total <= limit:
        return item, None
    kept: list[Section] = []
    left = limit
    for section in item.sections:
        if left <= 0:
            break
        kept.append(replace(section, text=section.text[:left]))
        left -= len(section.text)
    reason = f"{total} characters of text, only the first {limit} kept (ingest.max_document_chars)"
    return replace(item, sections=tuple(kept)), reason


def _yield_cpu_to_the_model() -> None:
    """Lower this (reader) thread's CPU priority.

    Parsing and chunking are a few percent of the work but, run at the same priority, they
    preempt torch's intra-op threads, which then wait for each other at every barrier. On
    two cores (`python -m bench ingest --docs 300`) end-to-end throughput went from 27.9 to
    30.8 chunks/s (ratio to the model alone 0.83 -> 0.92) once the reader was niced; it
    still stays ahead (the queue holds parsed documents) on the cycles torch leaves free.
    Linux-only (per-thread nice); elsewhere a no-op.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICENESS)
    except (AttributeError, OSError):
        log.debug("could not lower the reader thread's priority", exc_info=True)


def sync_state(
    cursor: Mapping[str, Any] | None, issues: DocumentIssues | None = None
) -> dict[str, Any]:
    """What ``sources.sync_state`` holds: the connector's opaque cursor, and the documents
    that are failing or stored truncated as of the end of the run (see DocumentIssues)."""
    state: dict[str, Any] = {"cursor": dict(cursor) if cursor is not None else None}
    if issues is not None:
        state.update(issues.as_state())
    return state


def _document_write(source: str, item: _Changed) -> DocumentWrite:
    doc = item.doc
    return DocumentWrite(
        source=source,
        external_id=doc.external_id,
        uri=doc.uri,
        title=doc.title,
        content_type=doc.content_type,
        content_hash=item.content_hash,
        content=doc.text,
        metadata=doc.metadata,
        collection=doc.collection,
        path=doc.path,
        level=doc.level,
        # None (unknown) is stored as no principals: admins only, until a policy says more.
        acl=tuple(doc.acl or ()),
        size_bytes=doc.size_bytes,
        modified_at=doc.modified_at,
        chunks=item.chunks,
        text_hash=doc.text_hash,
        base_metadata=doc.base_metadata,
    )


def _as_connector_error(source: str, exc: BaseException) -> BaseException:
    if isinstance(exc, KBError):
        return exc
    if not isinstance(exc, Exception):
        return exc  # KeyboardInterrupt and friends pass through unchanged
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return ConnectorError(f"reading source {source!r} failed: {detail[:500]}")


__all__ = ["DEFAULT_BATCH_CHUNKS", "Pipeline", "PipelineOptions", "SyncOutcome", "sync_state"]
