"""The tools through the SDK's in-process client: shapes, filters, limits, errors, config."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import ALICE, BOB, Corpus, ServerFactory


def _text(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.anyio
async def test_tools_are_typed_read_only_and_titled(make_server: ServerFactory) -> None:
    async with Client(make_server(*ALICE)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"search", "fetch", "list_sources"}
    for tool in tools.values():
        assert tool.title and tool.description
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["top_k"]["maximum"] == 50
    assert "`fetch`" in (tools["search"].description or "")


@pytest.mark.anyio
async def test_search_answers_in_the_chatgpt_connector_shape(
    make_server: ServerFactory, corpus: Corpus
) -> None:
    async with Client(make_server(*ALICE)) as client:
        result = await client.call_tool("search", {"query": "how do deployments work", "top_k": 3})
    assert not result.is_error
    structured = result.structured_content
    assert structured is not None
    # The text content is the same object as JSON (what connector clients parse).
    assert json.loads(_text(result)) == structured
    first = structured["results"][0]
    assert first["title"] == "Deployment runbook"
    assert first["id"] == corpus.id("Deployment runbook")
    assert first["uri"] == f"kb://documents/{first['id']}"
    assert first["url"].startswith("https://wiki.example.com/")
    # The passage of the best-matching chunk, whole sentences (which chunk may vary by rank).
    assert "deployment" in first["text"].lower() and first["text"].endswith(".")
    assert first["chunk_id"].startswith("chunk:")
    assert {"score", "source", "collection", "modified", "content_type"} <= set(first)
    assert len(structured["results"]) <= 3


@pytest.mark.anyio
async def test_search_filters_and_their_errors(make_server: ServerFactory) -> None:
    async with Client(make_server(*ALICE)) as client:
        only_finance = await client.call_tool(
            "search", {"query": "receipts deployments backups", "filters": {"sources": ["finance"]}}
        )
        recent = await client.call_tool(
            "search",
            {"query": "receipts deployments backups", "filters": {"modified_after": "2024-04-15"}},
        )
        bad_date = await client.call_tool(
            "search", {"query": "x", "filters": {"modified_after": "last tuesday"}}
        )
        too_many = await client.call_tool("search", {"query": "x", "top_k": 500})
        unknown_filter = await client.call_tool("search", {"query": "x", "filters": {"team": "a"}})
    assert only_finance.structured_content is not None
    assert {r["source"] for r in only_finance.structured_content["results"]} == {"finance"}
    assert recent.structured_content is not None
    assert [r["title"] for r in recent.structured_content["results"]] == ["Database backup policy"]
    assert bad_date.is_error and "ISO 8601" in _text(bad_date)
    assert too_many.is_error and "top_k" in _text(too_many) and "50" in _text(too_many)
    assert unknown_filter.is_error and "team" in _text(unknown_filter)
    for result in (bad_date, too_many, unknown_filter):
        assert "pydantic" not in _text(result) and "Traceback" not in _text(result)


@pytest.mark.anyio
async def test_fetch_document_and_chunk_with_neighbours(
    make_server: ServerFactory, corpus: Corpus
) -> None:
    runbook = corpus.docs["Deployment runbook"].id
    middle = corpus.chunks[runbook][1]
    async with Client(make_server(*ALICE)) as client:
        doc = await client.call_tool("fetch", {"id": f"kb://documents/{runbook}"})
        chunk = await client.call_tool("fetch", {"id": f"chunk:{middle}", "neighbours": 1})
    assert doc.structured_content is not None
    assert doc.structured_content["id"] == str(runbook)
    assert doc.structured_content["text"].startswith("Deployments go out every Tuesday")
    assert doc.structured_content["metadata"]["team"] == "platform"
    assert doc.structured_content["truncated"] is False
    assert chunk.structured_content is not None
    assert chunk.structured_content["passage"]["chunk_id"] == f"chunk:{middle}"
    assert [n["ordinal"] for n in chunk.structured_content["neighbours"]] == [0, 2]
    assert "Roll back" in chunk.structured_content["text"]


@pytest.mark.anyio
async def test_denied_missing_and_malformed_ids_fail_alike(
    make_server: ServerFactory, corpus: Corpus
) -> None:
    salary = corpus.id("Salary review process")
    bob_chunk = corpus.chunks[corpus.docs["Salary review process"].id][0]
    async with Client(make_server(*ALICE)) as client:
        texts = [
            _text(await client.call_tool("fetch", {"id": ident}))
            for ident in (salary, str(uuid.uuid4()), "not-an-id")
        ]
        chunk_texts = [
            _text(await client.call_tool("fetch", {"id": f"chunk:{n}"}))
            for n in (bob_chunk, 987654321)
        ]
    assert len(set(texts)) == 1 and "not found" in texts[0]
    assert len(set(chunk_texts)) == 1 and "not found" in chunk_texts[0]


@pytest.mark.anyio
async def test_unknown_tool_is_invalid_params(make_server: ServerFactory) -> None:
    async with Client(make_server(*ALICE)) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("delete_everything", {})
    assert caught.value.error.code == -32602


@pytest.mark.anyio
async def test_search_reports_progress(make_server: ServerFactory) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with Client(make_server(*BOB)) as client:
        await client.call_tool("search", {"query": "salary"}, progress_callback=progress)
    assert [s[0] for s in seen] == [0, 2]
    assert seen[-1][2] is not None and "result" in seen[-1][2]


@pytest.mark.anyio
async def test_tools_follow_the_configuration(make_server: ServerFactory) -> None:
    server = make_server(
        *ALICE,
        mcp={
            "name": "acme-kb",
            "instructions": "Only for ACME staff.",
            "top_k_max": 5,
            "tools": {
                "search": {"name": "kb_search", "description": "Search ACME's documents."},
                "fetch": {"enabled": False},
            },
        },
    )
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        prompt = await client.get_prompt("answer_with_citations", {"question": "Who?"})
        too_many = await client.call_tool("kb_search", {"query": "x", "top_k": 6})
    assert set(tools) == {"kb_search", "list_sources"}
    assert tools["kb_search"].description == "Search ACME's documents."
    assert tools["kb_search"].input_schema["properties"]["top_k"]["maximum"] == 5
    assert too_many.is_error
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "`kb_search`" in text and "fetch" not in text
    assert server.name == "acme-kb" and server.instructions == "Only for ACME staff."
