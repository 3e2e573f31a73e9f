"""Per-caller cache of ``list_sources`` counts, invalidated by every documents write.

``list_sources`` runs on every MCP ``resources/list`` and completion keystroke, and its
answer (documents per source and collection that the caller may read) costs one GROUP BY
over every allowed document: 100-450 ms at 250,000 documents. It changes only when

* the caller's filter changes: policy version, disabled sources, principals, API-key
  narrowing (all in the key), or
* a document is written, deleted or re-authorised, by any process: every such transaction
  commits with ``pg_notify('kb_documents')`` (``server/db/revocations.py``).

So each answer is kept under a key that holds the filter's parts, with the *documents
generation* it is current for: a counter that moves on every ``kb_documents`` notification
this process hears, and on every (re)connect of the LISTEN connection (anything committed
while nobody listened). A count that included a deleted or revoked document would leak
its existence, so the cache fails safe: while the LISTEN connection is down (or before it
is up) :meth:`DocumentsGeneration.current` is None and nothing is served from the cache or
stored in it. A silently dead connection is noticed by a ping every ``ping_interval_s``
(at most ``ping_timeout_s`` each); that bounds how long a lost notification could go
unnoticed. Entries also expire after ``max_age_s``, a bound for writes that bypass the
announcing engines (a hand-run ``psql`` DELETE).

An answer whose generation has moved, or that is older than ``max_age_s``, is brought up
to date from the documents change log when the caller of :meth:`SourceCounts.get` can
(``advance``; list_sources can, see :mod:`.source_tally`), else computed afresh. The log
is written by a trigger, so bringing an answer forward also reads writes that announced
nothing. An answer is stored under the generation read
before it was computed, so one that raced a write is brought forward (or recomputed) by
the next call. Concurrent misses of one key share one query.

With read replicas the generation is the revocation barrier's own count of what it heard
(:class:`BarrierGeneration`), which moves only after the barrier has been raised, so a miss
computed after a write never reads a replica that has not replayed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar, cast

import psycopg
from psycopg import sql

from policies.access import AccessFilter
from server.db.replicas import RevocationBarrier
from server.db.revocations import DOCUMENTS_CHANNEL

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ENTRIES = 4096
MAX_AGE_S = 300.0
PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 2.0
RETRY_DELAY_S = 1.0
APPLICATION_NAME = "kb-documents-generation"  # how the LISTEN connection shows in pg_stat_activity


class Generation(Protocol):
    """Where the documents generation comes from: a number, or None when unknown."""

    def current(self) -> int | None: ...


class DocumentsGeneration:
    """Counts the ``kb_documents``/``kb_policy`` notifications this process hears.

    :meth:`current` is None until the LISTEN connection is up and whenever it is lost.
    """

    def __init__(
        self,
        dsn: str,
        channels: Sequence[str] = (DOCUMENTS_CHANNEL,),
        *,
        ping_interval_s: float = PING_INTERVAL_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
        retry_delay_s: float = RETRY_DELAY_S,
    ) -> None:
        self._dsn = dsn
        self.channels = tuple(channels)
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.retry_delay_s = retry_delay_s
        self._generation = 0
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while listening (for tests and start-up)
        self.last_payload = ""  # of the last notification heard (tests settle on it)

    def current(self) -> int | None:
        return self._generation if self._listening else None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kb-documents-generation")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._lost()
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _lost(self) -> None:
        self._listening = False
        self._generation += 1  # nothing stored before the outage matches again
        self.connected.clear()

    async def _run(self) -> None:
        warned = False  # one warning per outage
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection or a failed ping
                if self._listening or not warned:
                    log.warning(
                        "list_sources counts uncached: cannot follow document changes (%s)",
                        exc.__class__.__name__,
                    )
                    warned = True
                self._lost()
                await asyncio.sleep(self.retry_delay_s)

    async def _follow(self) -> None:
        connect = psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, application_name=APPLICATION_NAME
        )
        async with await connect as conn:
            for channel in self.channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            # Anything committed before now was not heard: start a new generation.
            self._generation += 1
            self._listening = True
            self.connected.set()
            while True:
                notes = conn.notifies(timeout=self.ping_interval_s)
                # aclosing: the generator holds the connection lock while suspended.
                async with contextlib.aclosing(notes):
                    async for note in notes:
                        self._generation += 1
                        self.last_payload = note.payload
                # A dead connection that raised nothing (a partition) fails the ping.
                await asyncio.wait_for(conn.execute("SELECT 1"), self.ping_timeout_s)


class BarrierGeneration:
    """The read replicas' revocation barrier as a generation (see the module docstring)."""

    def __init__(self, barrier: RevocationBarrier) -> None:
        self._barrier = barrier

    def current(self) -> int | None:
        return self._barrier.heard if self._barrier.listening else None


class NoGeneration:
    """For processes that do not follow document changes (one-shot commands): no cache."""

    def current(self) -> int | None:
        return None


def caller_key(access: AccessFilter) -> Hashable:
    """Everything about the caller that the counts depend on (see the module docstring)."""
    caller = access.caller
    return (
        access.policy_version,
        access.disabled_sources,
        caller.principals,
        caller.restrict_sources,
        caller.restrict_collections,
    )


class SourceCounts:
    """Answers of one kind per caller, each with the documents generation it is current
    for; least recently used out.

    An answer whose generation has moved, or that has expired, is not thrown away when
    ``advance`` is given: it is brought up to date from it (``advance(old)``; None means it
    cannot be, and the answer is computed afresh), which for list_sources reads only the
    documents written since (:mod:`.source_tally`)."""

    def __init__(
        self,
        generation: Generation,
        *,
        max_entries: int = MAX_ENTRIES,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.generation = generation
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._clock = clock
        # caller key -> (generation, answer, expiry). An expired answer is brought forward
        # if it can be (that reads any write that bypassed the notifications too: the
        # change log has it), else computed afresh.
        self._items: OrderedDict[Hashable, tuple[int, object, float]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0
        self.computed = 0  # queries run (concurrent misses of one key share one)
        self.advanced = 0  # of which answers brought forward rather than computed afresh

    def __len__(self) -> int:
        return len(self._items)

    async def get(
        self,
        access: AccessFilter,
        compute: Callable[[], Awaitable[T]],
        advance: Callable[[T], Awaitable[T | None]] | None = None,
    ) -> T:
        """The cached answer for ``access``, brought forward or computed if it is stale."""
        generation = self.generation.current()
        if generation is None:
            self.misses += 1
            return await compute()
        key = caller_key(access)
        found = self._items.get(key)
        expired = found is not None and found[2] <= self._clock()
        if expired and advance is None:
            found = None  # computed afresh
        if found is not None and found[0] == generation and not expired:
            self._items.move_to_end(key)
            self.hits += 1
            return cast(T, found[1])
        self.misses += 1
        pending = self._pending.get((generation, key))
        if pending is None:
            stale = None if found is None or advance is None else (advance, found[1])
            pending = asyncio.ensure_future(self._compute(key, generation, compute, stale))
            # Read a failure even if every waiter was cancelled (no "never retrieved").
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._pending[(generation, key)] = pending
        # shield: one waiter cancelled must not cancel the query the others wait for.
        return cast(T, await asyncio.shield(pending))

    async def _compute(
        self,
        key: Hashable,
        generation: int,
        compute: Callable[[], Awaitable[T]],
        stale: tuple[Callable[[T], Awaitable[T | None]], object] | None,
    ) -> T:
        self.computed += 1
        expiry = self._clock() + self.max_age_s
        try:
            value: T | None = None
            if stale is not None:
                advance, old = stale
                value = await advance(cast(T, old))
                self.advanced += value is not None
            if value is None:
                value = await compute()
        finally:
            self._pending.pop((generation, key), None)
        # Stored under the generation read before it was counted: had anything been
        # written meanwhile, the generation has moved and the next call brings it forward
        # (or, with no ``advance``, counts again). Never over a newer answer.
        newer = self._items.get(key)
        if newer is None or newer[0] <= generation:
            self._items[key] = (generation, value, expiry)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value


@contextlib.asynccontextmanager
async def follow_documents(
    dsn: str, barrier: RevocationBarrier | None, *, watch: bool = True
) -> AsyncIterator[Generation]:
    """The documents generation for this process: the replicas' barrier if there is one,
    else a LISTEN connection of its own; without ``watch``, none (nothing cached)."""
    if not watch:
        yield NoGeneration()
        return
    if barrier is not None:
        yield BarrierGeneration(barrier)
        return
    own = DocumentsGeneration(dsn)
    await own.start()
    try:
        yield own
    finally:
        await own.stop()


__all__ = [
    "APPLICATION_NAME",
    "BarrierGeneration",
    "DocumentsGeneration",
    "Generation",
    "NoGeneration",
    "SourceCounts",
    "caller_key",
    "follow_documents",
]
