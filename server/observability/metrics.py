"""Every in-process metric kb exports, and the one-line calls that record them.

Prometheus metrics are process-wide by nature (like loggers), so they are defined here at
import and registered in prometheus-client's default registry; what depends on a running
server (policy age, pool use, queue depth, ingestion totals) is read at scrape time by
:mod:`server.observability.collectors` instead and never lives here.

Several processes on one host: when ``PROMETHEUS_MULTIPROC_DIR`` names a writable
directory *before the process starts*, prometheus-client keeps these values in files
there and ``/metrics`` sums them over every process (:func:`exposition`). Only counters
and histograms are defined here, so no gauge needs a multiprocess mode.

Label values are bounded: tool and method names are clamped to what the server registers
(:mod:`server.observability.mcp_metrics`), sources are the configured ones, outcomes and
stages are fixed sets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, Final, ParamSpec, Protocol, TypeVar

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric

from core.errors import ConfigError
from server.observability import search_clock

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# A `_created` series per counter and histogram doubles what Prometheus stores for nothing
# a dashboard uses (rate() handles restarts); before any metric below is defined.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Latency buckets from 1 ms to 30 s: a cached search is ~5 ms, a loaded one ~1 s.
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
RESULT_BUCKETS: Final = (0, 1, 2, 3, 5, 10, 20, 50, 100)

MCP_REQUESTS = Counter(
    "kb_mcp_requests",
    "MCP requests answered, by JSON-RPC method, tool (tools/call) and outcome "
    "(ok, tool_error, error, invalid).",
    ["method", "tool", "outcome"],
)
MCP_DURATION = Histogram(
    "kb_mcp_request_duration_seconds",
    "Time to answer an MCP request, by JSON-RPC method and tool.",
    ["method", "tool"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_DURATION = Histogram(
    "kb_search_duration_seconds",
    "Whole search service calls (embed, database, re-check, fusion, passages), by mode.",
    ["mode"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_STAGE = Histogram(
    "kb_search_stage_seconds",
    "Time one search spent per stage: embed (waiting for the query vector), database "
    "(SQL statements, summed over both legs), recheck (per-row policy re-check).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_RESULTS = Histogram(
    "kb_search_results",
    "Hits one search returned to its caller, by mode.",
    ["mode"],
    buckets=RESULT_BUCKETS,
)
AUDITED_CALLS = Counter(
    "kb_audited_calls",
    "Audited calls by transport, method and outcome (ok, denied, not_found, invalid, error); "
    "denied and not_found are what a caller was refused.",
    ["transport", "method", "outcome"],
)
EMBED_TEXTS = Counter(
    "kb_embedder_texts",
    "Texts embedded by the model in this process, by kind (query, document).",
    ["kind"],
)
EMBED_BATCH = Histogram(
    "kb_embedder_batch_seconds",
    "Duration of one call into the embedding model (count = batches, sum = busy seconds), "
    "by kind; throughput is rate(kb_embedder_texts_total) / rate(..._sum).",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "kb_http_requests",
    "HTTP responses by route group (mcp, admin, health, metrics, other) and status class.",
    ["route", "status"],
)

# ------------------------------------------------------------------------ recording


def observe_mcp(method: str, tool: str, outcome: str, seconds: float) -> None:
    MCP_REQUESTS.labels(method, tool, outcome).inc()
    MCP_DURATION.labels(method, tool).observe(seconds)


def observe_audited(transport: str, method: str, outcome: str) -> None:
    AUDITED_CALLS.labels(transport, method, outcome).inc()


def observe_http(route: str, status: int) -> None:
    HTTP_REQUESTS.labels(route, f"{status // 100}xx").inc()


def observe_embedding(kind: str, texts: int, seconds: float) -> None:
    EMBED_TEXTS.labels(kind).inc(texts)
    EMBED_BATCH.labels(kind).observe(seconds)


@contextmanager
def embedding(kind: str, texts: int) -> Iterator[None]:
    """Time one model call of ``texts`` texts (and count it as the search's embed stage)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        observe_embedding(kind, texts, elapsed)
        search_clock.add("embed", elapsed)


def timed_document_batches(
    fn: Callable[Concatenate[S, list[str], P], R],
) -> Callable[Concatenate[S, list[str], P], R]:
    """Decorate a blocking ``(self, texts, ...)`` that embeds ``texts`` as documents."""

    def wrapper(self: S, texts: list[str], /, *args: P.args, **kwargs: P.kwargs) -> R:
        with embedding("document", len(texts)):
            return fn(self, texts, *args, **kwargs)

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def timed_query(
    fn: Callable[Concatenate[S, str, P], Awaitable[R]],
) -> Callable[Concatenate[S, str, P], Awaitable[R]]:
    """Decorate an async ``(self, text, ...)`` that embeds one query (cache hits included:
    the search's embed stage is what the caller waited for)."""

    async def wrapper(self: S, text: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with embedding("query", 1):
            return await fn(self, text, *args, **kwargs)

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


class _Query(Protocol):
    @property
    def mode(self) -> str | None: ...


class _Result(Protocol):
    @property
    def hits(self) -> tuple[object, ...]: ...


Q = TypeVar("Q", bound=_Query)
Res = TypeVar("Res", bound=_Result)
A = TypeVar("A")


def observed_search(
    fn: Callable[Concatenate[S, A, Q, P], Awaitable[Res]],
) -> Callable[Concatenate[S, A, Q, P], Awaitable[Res]]:
    """Decorate ``search(self, access, query, ...)``: duration, stages and result count of
    each search that returns (a failed one is counted by its door: MCP, audit outcome)."""

    async def wrapper(self: S, access: A, query: Q, /, *a: P.args, **kw: P.kwargs) -> Res:
        started = time.perf_counter()
        with search_clock.started() as clock:
            result = await fn(self, access, query, *a, **kw)
        mode = query.mode or "default"
        SEARCH_DURATION.labels(mode).observe(time.perf_counter() - started)
        SEARCH_RESULTS.labels(mode).observe(len(result.hits))
        for stage, seconds in clock.seconds.items():
            SEARCH_STAGE.labels(stage).observe(seconds)
        return result

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


# ------------------------------------------------------------------------ exposition


def multiprocess_dir() -> str | None:
    """The shared directory when several processes write metrics (set before start)."""
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and Path(path).is_dir() else None


def exposition(*extra: object) -> bytes:
    """The text format of every metric of this process (or of every process sharing
    ``PROMETHEUS_MULTIPROC_DIR``), plus the scrape-time ``extra`` collectors."""
    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_DefaultRegistryView())
    for collector in extra:
        registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry)


def serve_process_metrics(port: int | None, host: str) -> None:
    """A process without the HTTP app (``kb worker``) serves its own metrics on ``port``
    (a daemon thread; nothing when ``port`` is None)."""
    if port is None:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        # One line at start (port taken, address not local), not a traceback.
        raise ConfigError(
            f"metrics.worker_port: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from None


class _DefaultRegistryView:
    """The default registry's metrics, re-exported into a per-scrape registry (so the
    scrape-time collectors are never registered globally)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


__all__ = [
    "AUDITED_CALLS",
    "EMBED_BATCH",
    "EMBED_TEXTS",
    "HTTP_REQUESTS",
    "MCP_DURATION",
    "MCP_REQUESTS",
    "SEARCH_DURATION",
    "SEARCH_RESULTS",
    "SEARCH_STAGE",
    "embedding",
    "exposition",
    "multiprocess_dir",
    "observe_audited",
    "observe_embedding",
    "observe_http",
    "observe_mcp",
    "observed_search",
    "serve_process_metrics",
    "timed_document_batches",
    "timed_query",
]
