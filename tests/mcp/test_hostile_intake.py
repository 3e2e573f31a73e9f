"""Load shedding on /mcp: past the in-flight bound, work calls get 503 + Retry-After at once.

The intake wraps a transport that holds each call until released, so "in flight" is exact
(the real server's bound is exercised end to end by ``python -m bench overload``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from server.mcp.intake import BUSY_CODE, McpIntake

pytestmark = pytest.mark.anyio


class HeldTransport:
    """An ASGI app answering 200 once ``release`` is set; counts the calls it saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.seen: list[dict[str, Any]] = []

    async def wait_seen(self, count: int) -> None:
        while len(self.seen) < count:
            self.arrived.clear()
            await self.arrived.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append(json.loads(body))
        self.arrived.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def call(request_id: int, method: str = "tools/call") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {"name": "search"}}


async def test_work_calls_past_the_bound_are_shed_and_others_pass() -> None:
    inner = HeldTransport()
    intake = McpIntake(inner, limit=2, retry_after_s=3)
    transport = httpx.ASGITransport(app=intake)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        held = [asyncio.create_task(client.post("/mcp", json=call(i))) for i in (1, 2)]
        await asyncio.wait_for(inner.wait_seen(2), timeout=5)
        assert intake.in_flight == 2
        # A third search: refused at once, naming its id, with Retry-After.
        busy = await asyncio.wait_for(client.post("/mcp", json=call(3)), timeout=2)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "3"
        assert busy.json()["id"] == 3 and busy.json()["error"]["code"] == BUSY_CODE
        # Bookkeeping is never shed (it goes through, and is held like everything else).
        listing = asyncio.create_task(client.post("/mcp", json=call(4, "tools/list")))
        await asyncio.wait_for(inner.wait_seen(3), timeout=5)
        assert inner.seen[-1]["method"] == "tools/list"
        inner.release.set()
        assert [r.status_code for r in await asyncio.gather(*held, listing)] == [200, 200, 200]
        assert intake.in_flight == 0 and intake.shed == 1
        # Capacity is back once the calls finished.
        assert (await client.post("/mcp", json=call(5))).status_code == 200
    assert sorted(m["id"] for m in inner.seen) == [1, 2, 4, 5]
