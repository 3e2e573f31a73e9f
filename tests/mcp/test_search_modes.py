"""The search tool's mode argument: announced to models, honoured, checked."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.mcp.conftest import ALICE, Corpus, ServerFactory

pytestmark = pytest.mark.anyio


async def test_mode_is_in_the_input_schema_and_says_when_to_use_keyword(
    make_server: ServerFactory,
) -> None:
    async with Client(make_server(*ALICE)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    mode = tools["search"].input_schema["properties"]["mode"]
    allowed = {e for option in mode["anyOf"] for e in option.get("enum", [])}
    assert allowed == {"hybrid", "keyword", "semantic"}
    # A model reading the schema learns when keyword mode is the right one.
    assert "error codes" in mode["description"] and "ERR-4031" in mode["description"]
    assert "query" in tools["search"].input_schema["required"]


async def test_modes_rank_by_their_own_leg(make_server: ServerFactory, corpus: Corpus) -> None:
    async with Client(make_server(*ALICE)) as client:

        async def titles(query: str, mode: str | None) -> list[str]:
            args: dict[str, object] = {"query": query, "top_k": 5}
            if mode is not None:
                args["mode"] = mode
            result = await client.call_tool("search", args)
            assert not result.is_error, result.content
            assert result.structured_content is not None
            return [r["title"] for r in result.structured_content["results"]]

        # No word in common with the runbook: only meaning finds it.
        question = "how do we ship new code"
        assert (await titles(question, "semantic"))[0] == "Deployment runbook"
        assert "Deployment runbook" not in await titles(question, "keyword")
        # One exact word: keyword returns only chunks that contain it.
        assert await titles("receipts", "keyword") == ["Travel expenses"]
        assert (await titles("receipts", None))[0] == "Travel expenses"
        bad = await client.call_tool("search", {"query": "x", "mode": "fuzzy"})
    assert bad.is_error and "mode" in str(bad.content[0])
    assert corpus.id("Travel expenses")
