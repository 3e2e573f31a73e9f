"""Bad prompt and tool input: invalid params (-32602), recorded, never "failed" or
"temporarily unavailable" (issue 8, holes 9 and 10)."""

from __future__ import annotations

import psycopg
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import ALICE, Corpus, ServerFactory


def _audit_rows(uri: str) -> list[tuple[str, str | None, str, object]]:
    with psycopg.connect(uri) as conn:
        return [
            (r[0], r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT method, target, outcome, arguments FROM audit_log ORDER BY id"
            ).fetchall()
        ]


@pytest.mark.anyio
async def test_prompt_with_an_unknown_argument_is_invalid_params(
    make_server: ServerFactory, corpus: Corpus
) -> None:
    runbook = corpus.id("Deployment runbook")
    async with Client(make_server(*ALICE)) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("summarize_document", {"id": runbook, "tone": "terse"})
    error = caught.value.error
    # The old gate let the SDK fail on the extra argument: -32603 "Prompt ... failed".
    assert error.code == -32602
    assert "unknown argument tone" in error.message
    rows = _audit_rows(corpus.dsn)
    assert rows[-1][:3] == ("prompts/get", "summarize_document", "invalid")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prompt", "arguments"),
    [
        ("answer_with_citations", {"question": "deploy\x00 day?"}),
        ("summarize_document", {"id": "abc\x00def"}),
        ("answer_with_citations", {"question": "half a pair \ud800"}),
    ],
)
async def test_prompt_with_unstorable_text_is_invalid_params(
    make_server: ServerFactory, corpus: Corpus, prompt: str, arguments: dict[str, str]
) -> None:
    async with Client(make_server(*ALICE)) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(prompt, arguments)
    error = caught.value.error
    # The old code answered "temporarily unavailable" (the audit insert failed on NUL).
    assert error.code == -32602, error.message
    assert "NUL" in error.message
    method, target, outcome, _ = _audit_rows(corpus.dsn)[-1]
    assert (method, target, outcome) == ("prompts/get", prompt, "invalid")
