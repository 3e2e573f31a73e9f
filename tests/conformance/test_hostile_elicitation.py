"""The elicitation-sep1330-enums flake, made deterministic.

A 2025-11-25 client opens its standalone GET stream in the background after initializing.
The fixture tools used to send ``elicitation/create`` without naming the call it belongs
to, so the SDK routed it to that GET stream; when the GET had not arrived yet (a loaded
machine), the request was dropped and the call hung until the suite's 30 s timeout. Here
the client never opens a GET stream at all: the elicitation must arrive on the call's own
POST stream, and the call must complete.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.live_server import free_port
from tests.support.server_process import ServerProcess, server_env

VERSION = "2025-11-25"


@pytest.fixture(scope="module")
def fixture_url(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("elicitation-fixture")
    port = free_port()
    cmd = [sys.executable, "-m", "tests.conformance.fixture_server", "--port", str(port)]
    env = server_env(module_database, home, KB_AUTH__MODE="none")
    with ServerProcess(cmd, env, port, home / "server.log") as server:
        yield f"{server.url}/mcp"


def sse_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data:") and line[5:].strip():
            yield json.loads(line[5:])


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("test_elicitation_sep1330_enums", {}),
        ("test_elicitation_sep1034_defaults", {}),
        ("test_elicitation", {"message": "who are you?"}),
        ("test_sampling", {"prompt": "hello"}),
    ],
)
def test_server_requests_ride_on_the_calls_own_stream(
    fixture_url: str, tool: str, arguments: dict[str, Any]
) -> None:
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": VERSION}
    with httpx.Client(timeout=httpx.Timeout(10.0)) as http:
        init = http.post(
            fixture_url,
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {"elicitation": {}, "sampling": {}},
                    "clientInfo": {"name": "no-get-stream", "version": "0"},
                },
            },
        )
        assert init.status_code == 200, init.text
        session = {**headers, "Mcp-Session-Id": init.headers["mcp-session-id"]}
        sent = http.post(
            fixture_url,
            headers=session,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        assert sent.status_code == 202
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        result: dict[str, Any] | None = None
        asked: str | None = None
        with http.stream("POST", fixture_url, headers=session, json=call) as stream:
            assert stream.status_code == 200
            for message in sse_messages(stream):
                if message.get("method") in ("elicitation/create", "sampling/createMessage"):
                    asked = message["method"]
                    answer: dict[str, Any] = (
                        {"action": "accept", "content": {}}
                        if asked == "elicitation/create"
                        else {
                            "role": "assistant",
                            "content": {"type": "text", "text": "hi"},
                            "model": "test",
                        }
                    )
                    reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer}
                    assert http.post(fixture_url, headers=session, json=reply).status_code == 202
                elif message.get("id") == 2:
                    result = message
                    break
        assert asked is not None, "the server request never reached the call's stream"
        assert result is not None and "result" in result, result
        assert not result["result"].get("isError"), result
