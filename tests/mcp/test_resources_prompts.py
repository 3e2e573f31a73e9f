"""Resources, templates, completion and prompts through the in-process client."""

from __future__ import annotations

import json
import uuid

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from tests.mcp.conftest import ALICE, BOB, Corpus, ServerFactory


@pytest.mark.anyio
async def test_resource_list_is_paginated_per_caller(
    make_server: ServerFactory, corpus: Corpus
) -> None:
    async with Client(make_server(*ALICE, mcp={"page_size": 1})) as client:
        pages, cursor = [], None
        while True:
            page = await client.list_resources(cursor=cursor)
            pages.append([str(r.uri) for r in page.resources])
            cursor = page.next_cursor
            if not cursor:
                break
        with pytest.raises(MCPError) as bad:
            await client.list_resources(cursor="not-a-cursor")
    docs = [u for p in pages for u in p if u.startswith("kb://documents/")]
    assert pages[0][:2] == ["kb://sources/finance", "kb://sources/wiki"]
    assert all(len([u for u in p if u.startswith("kb://documents/")]) <= 1 for p in pages)
    assert sorted(docs) == sorted(
        f"kb://documents/{corpus.id(t)}"
        for t in ("Deployment runbook", "Database backup policy", "Travel expenses")
    )
    assert bad.value.error.code == -32602 and "cursor" in bad.value.error.message


@pytest.mark.anyio
async def test_templates_and_reads(make_server: ServerFactory, corpus: Corpus) -> None:
    runbook = corpus.id("Deployment runbook")
    async with Client(make_server(*ALICE)) as client:
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        doc = await client.read_resource(f"kb://documents/{runbook}")
        listing = await client.read_resource("kb://sources/wiki")
        errors = []
        for uri in ("kb://sources/hr", "kb://sources/nope", "kb://elsewhere/x", "test://nothing"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            errors.append(caught.value.error)
    assert templates == {"kb://documents/{id}", "kb://sources/{source}"}
    content = doc.contents[0]
    assert content.text.startswith("Deployments go out")  # type: ignore[union-attr]
    assert content.mime_type == "text/markdown"
    assert content.meta is not None and content.meta["title"] == "Deployment runbook"
    data = json.loads(listing.contents[0].text)  # type: ignore[union-attr]
    assert data["documents"] == 2 and {d["title"] for d in data["page"]} == {
        "Deployment runbook",
        "Database backup policy",
    }
    # A source the caller cannot read reads exactly like one that does not exist.
    assert {(e.code, e.message) for e in errors} == {(-32602, "Resource not found")}
    assert [e.data for e in errors] == [
        {"uri": "kb://sources/hr"},
        {"uri": "kb://sources/nope"},
        {"uri": "kb://elsewhere/x"},
        {"uri": "test://nothing"},
    ]


@pytest.mark.anyio
async def test_completion_offers_only_readable_documents(
    make_server: ServerFactory, corpus: Corpus
) -> None:
    doc_ref = ResourceTemplateReference(uri="kb://documents/{id}")
    async with Client(make_server(*ALICE)) as alice, Client(make_server(*BOB)) as bob:
        by_title = await alice.complete(doc_ref, {"name": "id", "value": "dep"})
        hidden = await alice.complete(doc_ref, {"name": "id", "value": "Salary"})
        for_bob = await bob.complete(
            PromptReference(name="summarize_document"), {"name": "id", "value": "Sal"}
        )
        sources = await alice.complete(
            ResourceTemplateReference(uri="kb://sources/{source}"), {"name": "source", "value": ""}
        )
        other = await alice.complete(
            PromptReference(name="answer_with_citations"), {"name": "question", "value": "w"}
        )
    assert by_title.completion.values == [corpus.id("Deployment runbook")]
    assert hidden.completion.values == []
    assert for_bob.completion.values == [corpus.id("Salary review process")]
    assert sources.completion.values == ["finance", "wiki"]
    assert other.completion.values == []


@pytest.mark.anyio
async def test_prompts(make_server: ServerFactory, corpus: Corpus) -> None:
    runbook, backups = corpus.id("Deployment runbook"), corpus.id("Database backup policy")
    async with Client(make_server(*ALICE)) as client:
        listed = {p.name: p for p in (await client.list_prompts()).prompts}
        answer = await client.get_prompt(
            "answer_with_citations", {"question": "When do we deploy?"}
        )
        summary = await client.get_prompt("summarize_document", {"id": runbook})
        compared = await client.get_prompt("compare_documents", {"a": runbook, "b": backups})
        errors = {}
        for name, args in {
            "unknown": ("nope", {}),
            "missing": ("summarize_document", {}),
            "denied": ("summarize_document", {"id": corpus.id("Salary review process")}),
            "absent": ("summarize_document", {"id": str(uuid.uuid4())}),
        }.items():
            with pytest.raises(MCPError) as caught:
                await client.get_prompt(*args)
            errors[name] = caught.value.error
    assert set(listed) == {"answer_with_citations", "summarize_document", "compare_documents"}
    assert [a.name for a in listed["compare_documents"].arguments or []] == ["a", "b"]
    text = answer.messages[0].content.text  # type: ignore[union-attr]
    assert "When do we deploy?" in text and "kb://documents/" in text and "`search`" in text
    embedded = summary.messages[0].content
    assert embedded.type == "resource"
    assert embedded.resource.uri == f"kb://documents/{runbook}"  # type: ignore[union-attr]
    assert "Tuesday" in embedded.resource.text  # type: ignore[union-attr]
    assert [m.content.type for m in compared.messages] == ["resource", "resource", "text"]
    assert all(e.code == -32602 for e in errors.values())
    assert "nope" in errors["unknown"].message and "id" in errors["missing"].message
    assert errors["denied"].message == errors["absent"].message
