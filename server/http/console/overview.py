"""The Overview page: the corpus per source, searches and errors, ingestion."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from server.audit.stats import CallBucket
from server.http.console.render import page
from server.http.console.session import PREFIX, ConsoleUser
from server.usecases.overview import DAY_BUCKET_S, HOUR_BUCKET_S, overview

router = APIRouter(prefix=PREFIX, include_in_schema=False)


class _Bucket(Protocol):
    @property
    def start(self) -> datetime: ...


B = TypeVar("B", bound=_Bucket)


def series(
    buckets: Sequence[B],
    value: Callable[[B], float | None],
    *,
    width_s: int,
    count: int,
    now: datetime,
    label: str,
) -> list[tuple[str, float | None]]:
    """``count`` consecutive buckets ending at ``now``'s, empty ones as None."""
    by_start = {int(b.start.timestamp()): b for b in buckets}
    last = int(now.timestamp()) // width_s * width_s
    out: list[tuple[str, float | None]] = []
    for i in range(count - 1, -1, -1):
        start = last - i * width_s
        b = by_start.get(start)
        when = datetime.fromtimestamp(start, UTC).strftime(label)
        out.append((when, value(b) if b is not None else None))
    return out


@router.get("", response_model=None)
async def root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/")
async def overview_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    data = await overview(request.app.state.runtime, console.admin)
    now = data.at

    def hourly(value: Callable[[CallBucket], float | None]) -> list[tuple[str, float | None]]:
        return series(
            data.last_hour,
            value,
            width_s=HOUR_BUCKET_S,
            count=12,
            now=now,
            label="%H:%M",
        )

    def daily(
        buckets: Sequence[B], value: Callable[[B], float | None]
    ) -> list[tuple[str, float | None]]:
        return series(
            buckets,
            value,
            width_s=DAY_BUCKET_S,
            count=24,
            now=now,
            label="%H:00",
        )

    charts = {
        "latency_hour": hourly(lambda b: b.search_p50_ms),
        "searches_day": daily(data.last_day, lambda b: float(b.searches)),
        "latency_day": daily(data.last_day, lambda b: b.search_p95_ms),
        "errors_day": daily(data.last_day, lambda b: float(b.errors + b.denied)),
        "ingest_day": daily(data.ingest_day, lambda b: float(b.documents)),
    }
    return page(
        request,
        "overview.html",
        console,
        active="overview",
        data=data,
        charts=charts,
    )


__all__ = ["router", "series"]
