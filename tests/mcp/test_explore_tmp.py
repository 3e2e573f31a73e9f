import pytest
from mcp import Client
from tests.mcp.conftest import ALICE, BOB

@pytest.mark.anyio
async def test_explore(make_server, corpus):
    server = make_server(*ALICE)
    async with Client(server) as client:
        tools = await client.list_tools()
        for t in tools.tools:
            print(t.name, t.title, t.annotations, t.output_schema is not None)
        r = await client.call_tool("search", {"query": "how do deployments work", "top_k": 3})
        print(r.is_error, r.structured_content)
        print(r.content[0].text[:300])
        r = await client.call_tool("search", {"query": ""})
        print("EMPTY", r.is_error, r.content)
        r = await client.call_tool("fetch", {"id": corpus.id("Salary review process")})
        print("DENIED", r.is_error, r.content)
        r = await client.call_tool("fetch", {"id": corpus.id("Deployment runbook")})
        print("OK", r.is_error, r.structured_content)
        r = await client.call_tool("list_sources", {})
        print(r.structured_content)
        res = await client.list_resources()
        print([x.uri for x in res.resources], res.next_cursor)
        try:
            await client.read_resource("kb://documents/" + corpus.id("Salary review process"))
        except Exception as e:
            print("READ DENIED", type(e), e, getattr(e, "error", None))
        p = await client.list_prompts()
        print([x.name for x in p.prompts])
        try:
            await client.get_prompt("nope", {})
        except Exception as e:
            print("PROMPT", type(e), getattr(e, "error", None))
        c = await client.complete(ref={"type": "ref/prompt", "name": "summarize_document"}, argument={"name": "id", "value": "Dep"})
        print(c)
