"""Hybrid search over a real corpus with real embeddings, as several callers."""

from __future__ import annotations

import pytest

from core.errors import InvalidRequest
from server.embeddings.base import Embedder
from server.search import SearchQuery, SearchTuning, make_filters
from server.settings import Settings
from tests.search.conftest import ALL, ENG, HR, Company
from tests.search.corpus import acl_filter, leaky_sql_filter, open_service

pytestmark = pytest.mark.anyio

ALICE = ("user:alice", ENG, ALL)  # engineer
HANNA = ("user:hanna", HR, ALL)  # HR
BOB = ("user:bob", ENG, ALL)  # may also read BLUEBIRD

# Both vector-branch plans: the exact scan over allowed rows and HNSW with iterative scans.
TUNINGS = [SearchTuning(), SearchTuning(exact_scan_below=0)]


def titles(result: object) -> list[str]:
    return [h.title for h in result.hits]  # type: ignore[attr-defined]


@pytest.mark.parametrize("tuning", TUNINGS, ids=["exact", "hnsw"])
async def test_paraphrase_and_keyword_queries_rank_the_relevant_document_first(
    company: Company, settings: Settings, embedder: Embedder, tuning: SearchTuning
) -> None:
    alice = acl_filter(*ALICE)
    async with open_service(settings, embedder, tuning) as svc:
        # No shared words with the text: only the vector branch can find it.
        para = await svc.search(
            alice, SearchQuery("what should I do to get my computer ready when I start the job")
        )
        assert titles(para)[0] == "Onboarding checklist for new engineers"
        outage = await svc.search(alice, SearchQuery("the website broke: whom do we alert?"))
        assert titles(outage)[0] == "Incident response runbook"
        exact = await svc.search(alice, SearchQuery("pg_dump"))
        assert titles(exact)[0] == "Database backup and restore"
        hit = exact.hits[0]
        assert hit.uri == f"kb://documents/{hit.document_id}"
        assert hit.source_uri.startswith("https://wiki.example.com/")
        # The passage is plain text: whole sentences, no highlight markers.
        assert "pg_dump" in hit.snippet and "**" not in hit.snippet
        assert hit.snippet.endswith(".") and hit.highlight is None
        assert len(hit.snippet) <= settings.mcp.snippet_chars
        assert hit.source == "wiki" and hit.collection == "eng/platform"
        assert hit.chunk_id in company.chunks[hit.document_id]
        # One hit per document, scores descending.
        assert len({h.document_id for h in para.hits}) == len(para.hits)
        assert [h.score for h in para.hits] == sorted((h.score for h in para.hits), reverse=True)


async def test_denied_and_deleted_documents_never_appear(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    secret = company.id("Project BLUEBIRD")
    deleted = company.id("Retired VPN")
    queries = ["BLUEBIRD", "Initech acquisition", "pg_dump backups", "production is down", "VPN"]
    async with open_service(settings, embedder) as svc:
        for access in (acl_filter(*ALICE), acl_filter(*HANNA), leaky_sql_filter(*ALICE)):
            for q in queries:
                result = await svc.search(access, SearchQuery(q, top_k=20))
                ids = {h.document_id for h in result.hits}
                assert secret not in ids and deleted not in ids
                text = " ".join(h.snippet + h.title for h in result.hits)
                assert "BLUEBIRD" not in text and "Initech" not in text
        # bob may read it, and it is the best match for its own codename.
        bob = await svc.search(acl_filter(*BOB), SearchQuery("BLUEBIRD"))
        assert bob.hits[0].document_id == secret
        # HR sees HR and company-wide documents only.
        hr = await svc.search(acl_filter(*HANNA), SearchQuery("when are salaries paid", top_k=20))
        assert titles(hr)[0] == "Quarterly payroll schedule"
        assert {h.source for h in hr.hits} <= {"hr", "finance"}


async def test_filters_narrow_inside_the_query(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    bob = acl_filter(*BOB, HR)
    q = "company policy and procedures"

    async def search(**filters: object) -> list[str]:
        result = await svc.search(bob, SearchQuery(q, top_k=20, filters=make_filters(**filters)))  # type: ignore[arg-type]
        return sorted(titles(result))

    async with open_service(settings, embedder) as svc:
        assert await search(sources=["hr"]) == [
            "Parental leave policy",
            "Quarterly payroll schedule",
        ]
        # A collection matches itself and everything nested under it.
        assert await search(collections=["eng/platform"]) == [
            "Database backup and restore",
            "Incident response runbook",
        ]
        assert len(await search(collections=["eng"])) == 4
        assert await search(content_types=["application/pdf"]) == [
            "Incident response runbook",
            "Parental leave policy",
        ]
        assert await search(content_types=["application/x-unknown"]) == []
        assert await search(
            modified_after="2024-06-01", modified_before="2025-06-01T00:00:00Z"
        ) == [
            "Database backup and restore",
            "Quarterly payroll schedule",
        ]
        assert await search(metadata={"team": "platform", "year": 2024}) == [
            "Onboarding checklist for new engineers",
            "Project BLUEBIRD acquisition plan",
        ]
        # Numbers match whether given as numbers or strings.
        assert await search(metadata={"year": "2022"}) == ["Parental leave policy"]
        # Injection attempts are plain values: they match nothing and break nothing.
        assert await search(sources=["wiki' OR '1'='1"]) == []
        assert await search(metadata={"team' OR 1=1 --": "x"}) == []
        assert await search(collections=["%"]) == []
        assert await search(collections=["eng/_latform"]) == []


async def test_bad_input_is_a_clear_invalid_request(
    company: Company, settings: Settings, embedder: Embedder
) -> None:
    alice = acl_filter(*ALICE)
    async with open_service(settings, embedder) as svc:
        with pytest.raises(InvalidRequest, match="modified_after must be an ISO 8601"):
            make_filters(modified_after="last tuesday")
        with pytest.raises(InvalidRequest, match="earlier than"):
            make_filters(modified_after="2025-01-01", modified_before="2024-01-01")
        with pytest.raises(InvalidRequest, match="NUL"):
            make_filters(sources=["wiki\x00"])
        with pytest.raises(InvalidRequest, match="metadata value"):
            make_filters(metadata={"team": ["a", "b"]})
        with pytest.raises(InvalidRequest, match="top_k must be between 1 and 50"):
            await svc.search(alice, SearchQuery("backups", top_k=500))
        with pytest.raises(InvalidRequest, match="query must not be empty"):
            await svc.search(alice, SearchQuery("   "))
        with pytest.raises(InvalidRequest, match="NUL"):
            await svc.search(alice, SearchQuery("back\x00ups"))
        # Odd but valid queries work: operators, quotes, only stop words.
        for q in ['"point-in-time" -nightly OR', "the and of", "'; DROP TABLE chunks; --"]:
            result = await svc.search(alice, SearchQuery(q))
            assert all(h.document_id != company.id("Project BLUEBIRD") for h in result.hits)
        still = await svc.search(alice, SearchQuery("pg_dump"))
        assert titles(still)[0] == "Database backup and restore"
