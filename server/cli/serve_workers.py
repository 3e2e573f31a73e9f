"""`kb serve --workers N`: several server processes on one port.

One process runs all its Python under one GIL: at about 17 ms of server CPU per search it
tops out near 60 searches/s however many cores the machine has, while PostgreSQL and the
embedder's threads leave the rest of the cores half idle. With ``http.workers`` above 1
the parent process does everything that happens once (embedded PostgreSQL, migrations,
the first-start sync, the home lock, the database watchdog), and then starts N worker
processes (spawned, not forked: the parent may have loaded torch and started threads)
that each load the model, build the app and accept connections on a listening socket the
parent bound for it, one per worker on the same port (``SO_REUSEPORT``,
:mod:`server.http.listen`): the kernel spreads new connections over them.

Each worker is a replica on the same host (docs/scaling.md): policy changes and document
writes reach every worker by LISTEN/NOTIFY, so none serves a stale policy or count.
What is per process: the admission limit ``http.max_concurrent_calls`` and the
connection pool (each worker has its own, so the database sees N pools), and MCP
sessions: a 2025-11-25 session lives in the process that opened it, so several workers
need ``mcp.stateless_http`` (checked before anything starts). ``/metrics`` sums every
worker's counters through ``PROMETHEUS_MULTIPROC_DIR`` (one is made under the home
directory when the environment sets none).

The parent supervises: a worker that fails before it is ready stops the server (it would
fail the same way again); a worker that dies after it was ready (the OOM killer, a crash
in a native library) is replaced, at most :data:`MAX_RESTARTS` times a minute. Its socket
is closed at once, so new connections go to the live workers; the replacement's socket
listens only once it has loaded its model and opened the app.
SIGTERM/SIGINT to the parent are passed on to the workers, which finish their in-flight
requests within ``http.shutdown_grace_s``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Literal

import uvicorn
from sqlalchemy.engine import URL

from core.errors import KBError
from server.app import create_app
from server.cli.signals import STOP_SIGNALS
from server.db.engine import DatabaseTarget
from server.embeddings import load_embedder
from server.http.listen import PortGroup
from server.http.protocol import uvicorn_config
from server.observability.logs import setup_logging, uvicorn_log_options
from server.observability.metrics import MULTIPROC_ENV
from server.ops.tls import TLSFiles
from server.settings import Settings

log = logging.getLogger(__name__)

# A worker that dies after it was ready is replaced, but not in a loop: more deaths than
# this within RESTART_WINDOW_S means something is wrong with the host, and the server stops.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
# Loading the model and opening the runtime; a worker not ready by then is stuck.
READY_TIMEOUT_S = 300.0
# Exit code of a worker whose app did not start (uvicorn's own STARTUP_FAILURE).
STARTUP_FAILURE = 3


def workers_problem(settings: Settings) -> str | None:
    """Why ``http.workers`` cannot be served with these settings, or None."""
    if settings.http.workers > 1 and not settings.mcp.stateless_http:
        return (
            f"http.workers {settings.http.workers} needs mcp.stateless_http: true "
            "(KB_MCP__STATELESS_HTTP=true): a 2025-11-25 MCP session lives in the worker "
            "that opened it, and the next request may reach another (docs/scaling.md)"
        )
    return None


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to build the same server as the parent would.

    Pickled to each spawned worker: the settings as resolved by the parent (config file,
    environment, command-line overrides), the database the parent prepared (never started
    again by a worker), and how uvicorn logs and terminates TLS.
    """

    settings: Settings
    database_url: URL
    log_format: Literal["text", "json"]
    tls: TLSFiles | None = None


def _leave_with_parent(parent: int, interval_s: float = 1.0) -> None:
    """A worker whose parent died (SIGKILL, the OOM killer) stops serving: nobody would
    supervise it, and the embedded database it uses stops with the parent's handle.
    It sends itself SIGTERM, so in-flight requests still finish."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        log.error("worker %d: the kb serve parent %d is gone; stopping", os.getpid(), parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="kb-parent-watch", daemon=True).start()


def run_worker(spec: WorkerSpec, sockets: list[socket.socket], ready: Event) -> None:
    """A worker process's whole life: model (the query backend only: a worker embeds no
    documents), app, then uvicorn on the socket the parent bound for it."""
    settings = spec.settings
    setup_logging(settings.log_level, spec.log_format)
    # A stop signal while the model loads ends the worker once it has loaded; while it
    # serves, uvicorn's own handlers take over (and re-raise the signal afterwards: then
    # this only notes it again).
    stopping = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: stopping.set())
    _leave_with_parent(os.getppid())
    try:
        embedder = load_embedder(settings.embedding, queries_only=True)
    except KBError as exc:
        log.error("worker %d: the embedding model did not load: %s", os.getpid(), exc)
        sys.exit(STARTUP_FAILURE)
    if stopping.is_set():
        sys.exit(0)
    app = create_app(
        settings,
        target=DatabaseTarget(spec.database_url),  # the parent's: never started or stopped here
        run_migrations=False,
        embedder=embedder,
        on_ready=ready.set,
    )
    options = {
        **uvicorn_log_options(spec.log_format),
        **(spec.tls.uvicorn_options() if spec.tls else {}),
    }
    server = uvicorn.Server(uvicorn_config(app, settings, **options))
    server.run(sockets=sockets)
    sys.exit(0 if server.started else STARTUP_FAILURE)


@dataclass
class _Worker:
    slot: int
    process: SpawnProcess
    ready: Event
    started_at: float
    sock: socket.socket

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set()


class WorkerFailed(KBError):
    """A worker could not start, or workers kept dying: the server stops."""


class WorkerPool:
    """Starts ``count`` workers on ``group``, keeps them running, stops them on a signal."""

    def __init__(
        self,
        spec: WorkerSpec,
        group: PortGroup,
        count: int,
    ) -> None:
        self.spec = spec
        self.group = group
        self.count = count
        self.workers: list[_Worker] = []
        self.restarts: deque[float] = deque()
        self._context = multiprocessing.get_context("spawn")
        self._stop_signal: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self, slot: int) -> _Worker:
        ready = self._context.Event()
        sock = self.group.socket()
        process = self._context.Process(
            target=run_worker,
            args=(self.spec, [sock], ready),
            name=f"kb-serve-worker-{slot}",
        )
        try:
            process.start()
        except BaseException:
            sock.close()
            raise
        log.info("worker %d started (pid %s)", slot, process.pid)
        return _Worker(slot, process, ready, time.monotonic(), sock)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Block until SIGTERM/SIGINT (then stop the workers and return) or a failure
        (:class:`WorkerFailed`, after stopping the workers still running)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            for slot in range(self.count):
                self.workers.append(self._spawn(slot))  # one by one: stopped if the next fails
            announced = False
            while self._stop_signal is None:
                self._check_workers()
                if not announced and all(w.is_ready for w in self.workers):
                    announced = True
                    if on_ready is not None:
                        on_ready()
                time.sleep(0.2)
            log.info("%s: stopping %d workers", signal.Signals(self._stop_signal).name, self.count)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _check_workers(self) -> None:
        now = time.monotonic()
        for i, worker in enumerate(self.workers):
            if worker.process.is_alive():
                if not worker.is_ready and now - worker.started_at > READY_TIMEOUT_S:
                    raise WorkerFailed(
                        f"worker {worker.slot} was not ready after {READY_TIMEOUT_S:.0f} s"
                    )
                continue
            code = worker.process.exitcode
            if self._stop_signal is not None:
                return  # a signal to the process group reached the worker first
            # Closed now: connections queued on it are reset, new ones go to live workers.
            worker.sock.close()
            if not worker.is_ready:
                raise WorkerFailed(
                    f"worker {worker.slot} exited with code {code} before it was ready "
                    "(its log lines above say why)"
                )
            self._note_restart(now, worker.slot, code)
            self.workers[i] = self._spawn(worker.slot)

    def _note_restart(self, now: float, slot: int, code: int | None) -> None:
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
            self.restarts.popleft()
        if len(self.restarts) >= MAX_RESTARTS:
            raise WorkerFailed(
                f"workers died {len(self.restarts) + 1} times within "
                f"{RESTART_WINDOW_S:.0f} s (worker {slot} last, exit code {code}); stopping"
            )
        self.restarts.append(now)
        log.error("worker %d exited with code %s while serving; starting a new one", slot, code)

    def _stop_all(self) -> None:
        """SIGTERM to every live worker, the shutdown grace (and a margin) to finish, then
        SIGKILL for any still running."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM
        deadline = time.monotonic() + self.spec.settings.http.shutdown_grace_s + 15.0
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker %d did not stop in time; killing it", worker.slot)
                worker.process.kill()
                worker.process.join()
            worker.sock.close()


@contextmanager
def shared_metrics_dir(home: Path) -> Iterator[None]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers when the environment sets none: a fresh
    directory under ``home``, removed when the server stops (its files are this run's)."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    home.mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix="metrics-", dir=home)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "WorkerFailed",
    "WorkerPool",
    "WorkerSpec",
    "run_worker",
    "shared_metrics_dir",
    "workers_problem",
]
