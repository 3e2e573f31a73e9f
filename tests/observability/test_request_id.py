"""The request id: one per HTTP request, in its log lines and its audit row; a hostile
X-Request-ID is replaced, never logged or stored as sent (real `kb serve`, conftest.py)."""

from __future__ import annotations

import re
import uuid

import anyio
import httpx
import pytest

from tests.observability.conftest import Served, mcp_calls

pytestmark = pytest.mark.slow

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_log_lines_and_audit_rows_share_the_clients_request_id(served: Served) -> None:
    rid = served.request_ids["alice"]
    rows = [r for r in served.audit_rows() if r["request_id"] == rid]
    # alice's three searches, and nobody else's rows, carry her id.
    assert [(r["method"], r["target"], r["outcome"]) for r in rows] == [
        ("tools/call", "search", "ok")
    ] * 3
    assert all("user:alice" in r["principals"] for r in rows)
    lines = [line for line in served.log_lines() if line.get("request_id") == rid]
    calls = [line for line in lines if line["msg"].startswith("mcp tools/call search ok")]
    assert len(calls) == 3
    assert any(line["logger"] == "uvicorn.access" and line["path"] == "/mcp" for line in lines)
    # bob's not-found fetch: its row and its log line share bob's id.
    bob = [r for r in served.audit_rows() if r["request_id"] == served.request_ids["bob"]]
    assert ("tools/call", "fetch", "not_found") in {
        (r["method"], r["target"], r["outcome"]) for r in bob
    }


def test_every_line_of_a_request_carries_a_generated_id_when_none_is_sent(
    served: Served,
) -> None:
    r1 = httpx.get(f"{served.url}/healthz", timeout=30)
    r2 = httpx.get(f"{served.url}/healthz", timeout=30)
    ids = [r.headers["x-request-id"] for r in (r1, r2)]
    assert all(GENERATED.fullmatch(i) for i in ids) and ids[0] != ids[1]
    sane = httpx.get(f"{served.url}/healthz", headers={"X-Request-ID": "lb-7f3:a.b_c"}, timeout=30)
    assert sane.headers["x-request-id"] == "lb-7f3:a.b_c"


HOSTILE: list[tuple[str, str | bytes]] = [
    ("huge", "A" * 5000),
    ("forged json", 'x", "level": "CRITICAL", "msg": "forged\tline'),
    ("non-ascii", b"\xff\xfe\xc3\xa9-id"),
    ("too long by one", "b" * 129),
]


@pytest.mark.parametrize(("label", "hostile"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_request_id_is_replaced_not_logged(
    served: Served, label: str, hostile: str | bytes
) -> None:
    # Over plain HTTP: the answer names a fresh id.
    value = hostile.encode("latin-1") if isinstance(hostile, str) else hostile
    answer = httpx.get(f"{served.url}/healthz", headers={b"X-Request-ID": value}, timeout=30)
    given = answer.headers["x-request-id"]
    assert GENERATED.fullmatch(given), given
    # Through an audited MCP call: the row carries a fresh id, not the header.
    probe = f"hostile probe {uuid.uuid4().hex[:8]}"
    if isinstance(hostile, str):
        anyio.run(mcp_calls, served.url, served.tokens["alice"], [("search", {"query": probe})],
                  hostile)  # fmt: skip
        row = next(r for r in served.audit_rows() if r["arguments"].get("query") == probe)
        assert GENERATED.fullmatch(row["request_id"]), row["request_id"]
        assert any(
            line.get("request_id") == row["request_id"] and line["msg"].startswith("mcp tools/call")
            for line in served.log_lines()
        )
    raw = hostile if isinstance(hostile, str) else hostile.decode("latin-1")
    log = served.log_path.read_text(errors="replace")
    assert raw[:64] not in log and "forged" not in log and "CRITICAL" not in log
    ids = {r["request_id"] for r in served.audit_rows()}
    assert raw not in ids and not any(i and len(i) > 128 for i in ids)
