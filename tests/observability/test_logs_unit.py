"""Request ids and log lines without a server: sanitising, the ASGI middleware on raw
scopes (bytes no HTTP parser would let through), and the JSON and text formats."""

from __future__ import annotations

import json
import logging
import re

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from server.observability import logs
from server.observability.request_id import (
    RequestIdMiddleware,
    accepted,
    current_request_id,
    route_group,
)

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"a" * 129,
        b"abc\r\nX-Injected: 1",
        b"abc\x00def",
        b"abc\ndef",
        b"\x1b[31mred",
        b"id with spaces",
        b'"quoted"',
        "caf\u00e9".encode(),
        b"\xff\xfe",
    ],
)
def test_insane_ids_are_replaced(raw: bytes) -> None:
    new = accepted(raw)
    assert GENERATED.fullmatch(new) and new.encode() != raw


@pytest.mark.parametrize("raw", [b"a", b"A" * 128, b"req-1:2.3_4", b"0f9c2d4e-uuid-like"])
def test_sane_ids_are_kept(raw: bytes) -> None:
    assert accepted(raw) == raw.decode()


def test_middleware_sets_the_context_and_answers_the_id() -> None:
    seen: list[str | None] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(current_request_id())
        logging.getLogger("kb.test").warning("inside the request")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    hostile = b"evil\r\nX-Admin: yes\x00" + b"z" * 10_000
    scope = {"type": "http", "path": "/mcp", "headers": [(b"x-request-id", hostile)]}
    anyio.run(RequestIdMiddleware(app), scope, receive, send)
    (rid,) = seen
    assert rid is not None and GENERATED.fullmatch(rid)
    headers = dict(sent[0]["headers"])
    assert headers[b"x-request-id"] == rid.encode()
    assert current_request_id() is None  # reset once the request ends


def test_json_lines_escape_what_a_client_sent() -> None:
    record = logging.LogRecord(
        "kb.test", logging.INFO, __file__, 1, "query %s", ('a\n{"level": "CRITICAL"}',), None
    )
    record.request_id = "abc"
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["msg"] == 'query a\n{"level": "CRITICAL"}' and data["level"] == "INFO"
    assert data["request_id"] == "abc" and data["logger"] == "kb.test"


def test_access_lines_are_structured() -> None:
    args = ("127.0.0.1:5000", "POST", "/mcp", "1.1", 200)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    data = json.loads(logs.JsonFormatter().format(record))
    assert (data["method"], data["path"], data["status"]) == ("POST", "/mcp", 200)
    assert "request_id" not in data  # outside a request: no id rather than a fake one


def test_text_format_names_the_request_id() -> None:
    record = logging.LogRecord("kb.test", logging.INFO, __file__, 1, "hello", (), None)
    logs.RequestIdFilter().filter(record)
    assert "[-]: hello" in logging.Formatter(logs.TEXT_FORMAT).format(record)


def test_auto_format_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr("sys.stderr", Tty(True))
    assert logs.resolve_format("auto") == "text"
    monkeypatch.setattr("sys.stderr", Tty(False))
    assert logs.resolve_format("auto") == "json"
    assert logs.resolve_format("text") == "text"


def test_route_groups_are_bounded() -> None:
    assert route_group("/mcp") == "mcp" and route_group("/admin/ui/x") == "admin"
    assert route_group("/readyz") == "health" and route_group("/metrics") == "metrics"
    assert route_group("/" + "x" * 1000) == "other"
