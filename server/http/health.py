"""Liveness and readiness probes.

``/readyz`` also reports the policy snapshot: its version and its age (seconds since the
listener last confirmed it current). Past ``policy.max_age_s`` the replica fails closed
(every access filter is refused) and answers 503 here, so a load balancer takes it out.
"""

from __future__ import annotations

import asyncio
import math

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server.db import migrate
from server.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Database reachable, migrations current, model loaded, policy current"
)
async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        async with runtime.db.engine.connect() as conn:
            revision = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
        checks["database"] = "ok"
        head = await asyncio.to_thread(migrate.head_revision)
        checks["migrations"] = "ok" if revision == head else f"at {revision}, head is {head}"
    except Exception as exc:
        checks["database"] = f"unreachable ({exc.__class__.__name__})"
        checks["migrations"] = "unknown"
    checks["model"] = "ok" if runtime.embedder is not None else "not loaded"
    policies = runtime.policies
    # One reading of the clock decides and is shown, rounded up to the millisecond: a stale
    # answer never reports an age within the bound (1.0004 s past a 1 s bound is not "1.0").
    age = math.ceil(policies.age * 1000) / 1000
    checks["policy"] = (
        f"stale: unconfirmed for {age:.3f}s (bound {policies.max_age}s)"
        if policies.stale_at(age)
        else "ok"
    )
    ready = all(v == "ok" for v in checks.values())
    policy = {"version": policies.version, "age_s": age, "max_age_s": policies.max_age}
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "policy": policy},
        status_code=200 if ready else 503,
    )
