"""Keep a process's policy engine current: LISTEN kb_policy, plus a periodic version poll.

Each policy change commits with ``pg_notify('kb_policy', version)``. The listener holds one
psycopg 3 async connection in autocommit mode, LISTENs, and reloads the snapshot when a
notification names a version other than the active one. Notifications are lost while the
connection is down, so it also reloads after every (re)connect and polls the version every
``poll_interval`` seconds: a missed notification costs at most one interval. The poll also
compares the set of disabled sources, so switching a source off (in the sources table)
reaches every process within one interval.

Every successful reload or poll *confirms* the engine's snapshot. When the LISTEN
connection cannot be opened, a poll is still tried through the pool on each retry; if
both fail for longer than the engine's ``max_age``, the engine refuses access filters
(fail closed) and ``/readyz`` reports the replica not ready, until one succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import psycopg

from core.errors import PolicyError
from core.identity import Caller
from policies.engine import PolicyEngine
from policies.rules import parse_policy_yaml
from policies.store import CHANNEL, PolicyStore

log = logging.getLogger(__name__)

STOP_ATTEMPTS = 10
STOP_WAIT_S = 1.0


async def refresh(engine: PolicyEngine, store: PolicyStore, *, known: int | None = None) -> bool:
    """Reload the snapshot if the stored version or disabled sources differ from the
    active ones (``known``: a version a notification named; equal to ours means no-op)."""
    if known is not None and known == engine.version:
        return False
    snapshot = await store.load_snapshot(engine.admin_principals)
    if snapshot.version == engine.version and snapshot.disabled_sources == engine.disabled_sources:
        engine.confirm()
        return False
    engine.swap(snapshot)
    return True


async def poll(engine: PolicyEngine, store: PolicyStore) -> bool:
    """One cheap query; a reload only if something moved. Confirms the snapshot."""
    version, disabled = await store.state()
    if version == engine.version and disabled == engine.disabled_sources:
        engine.confirm()
        return False
    return await refresh(engine, store)


class PolicyListener:
    def __init__(
        self,
        engine: PolicyEngine,
        store: PolicyStore,
        dsn: str,
        *,
        poll_interval: float = 5.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.engine = engine
        self.store = store
        self._dsn = dsn
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kb-policy-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # Cancel until it ends: a cancellation can be absorbed by a library mid-cleanup,
        # and a process must never hang on its way out because of its policy listener.
        for _ in range(STOP_ATTEMPTS):
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
            if done:
                break
        else:
            log.error("policy listener did not stop after %d cancellations", STOP_ATTEMPTS)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection or a failed reload: retry
                self.connected.clear()
                log.warning(
                    "policy listener: %s; retrying in %.1fs (snapshot age %.1fs)",
                    exc.__class__.__name__,
                    self.retry_delay,
                    self.engine.age,
                )
                # LISTEN is down; the pool may still answer a poll, which keeps the
                # snapshot confirmed (and current) while the listener reconnects.
                try:
                    await poll(self.engine, self.store)
                except asyncio.CancelledError:
                    raise
                except Exception as poll_exc:
                    log.warning("policy poll failed too: %s", poll_exc.__class__.__name__)
                await asyncio.sleep(self.retry_delay)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            # Anything committed while we were not listening.
            await refresh(self.engine, self.store)
            while True:
                # aclosing: the generator holds the connection's lock while suspended at a
                # yield; if this task is cancelled during the reload below, the generator
                # must be closed here, or closing the connection waits for that lock
                # forever (seen: open_runtime's exit hanging in a test now and then).
                notes = conn.notifies(timeout=self.poll_interval)
                async with contextlib.aclosing(notes):
                    async for note in notes:
                        try:
                            version = int(note.payload)
                        except ValueError:
                            version = None
                        await refresh(self.engine, self.store, known=version)
                # The periodic poll: one cheap query, a reload only if something moved.
                await poll(self.engine, self.store)


BOOTSTRAP_ACTOR = Caller.of("svc:kb-bootstrap", transport="internal", client_id="kb")


@contextlib.asynccontextmanager
async def open_policy_engine(
    store: PolicyStore,
    dsn: str,
    *,
    admin_principals: Iterable[str] = (),
    policy_file: Path | None = None,
    watch: bool = True,
    poll_interval: float = 5.0,
    max_age: float | None = 30.0,
) -> AsyncIterator[PolicyEngine]:
    """Load the stored policy (importing ``policy_file`` first if none exists yet) and,
    with ``watch``, keep the engine current until the context exits. A watched engine
    refuses filters once its snapshot goes unconfirmed for ``max_age`` seconds (None: no
    bound); an unwatched one (one-shot commands) has no bound."""
    if policy_file is not None and await store.version() == 0:
        try:
            text = await asyncio.to_thread(policy_file.read_text, encoding="utf-8")
        except OSError as exc:
            raise PolicyError(
                f"policy file {policy_file.name} cannot be read: {exc.strerror}"
            ) from None
        policy = parse_policy_yaml(text, f"policy file {policy_file.name}")
        change = await store.bootstrap(policy, BOOTSTRAP_ACTOR)
        if change is not None:
            log.info("imported %s as policy version %s", policy_file.name, change.version)
    engine = PolicyEngine(
        await store.load_snapshot(admin_principals), max_age=max_age if watch else None
    )
    listener = PolicyListener(engine, store, dsn, poll_interval=poll_interval) if watch else None
    if listener is not None:
        await listener.start()
    try:
        yield engine
    finally:
        if listener is not None:
            await listener.stop()


__all__ = ["BOOTSTRAP_ACTOR", "PolicyListener", "open_policy_engine", "poll", "refresh"]
