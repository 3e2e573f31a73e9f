"""`/metrics` of a real `kb serve` after real MCP traffic over HTTP (see conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.observability.conftest import Served, scrape

pytestmark = pytest.mark.slow


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    """The sum of ``sample`` over series whose labels include ``labels``."""
    family_name = sample
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample.endswith(suffix) and sample.removesuffix(suffix) in families:
            family_name = sample.removesuffix(suffix)
    total = 0.0
    for s in families[family_name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def test_search_histograms_per_tool_and_stage(served: Served) -> None:
    m = scrape(served.url)
    # MCP requests by method and tool: alice's 3 searches and bob's 1, bob's fetch.
    searches = value(m, "kb_mcp_request_duration_seconds_count", method="tools/call", tool="search")
    assert searches >= 4
    assert value(m, "kb_mcp_request_duration_seconds_sum", tool="search") > 0
    assert value(m, "kb_mcp_requests_total", tool="fetch", outcome="tool_error") >= 1
    # A tool that does not exist is one "other" series, not a series per name sent.
    assert value(m, "kb_mcp_requests_total", tool="other") >= 1
    tools = {s.labels["tool"] for s in m["kb_mcp_requests"].samples if "tool" in s.labels}
    assert tools <= {"", "search", "fetch", "list_sources", "other"}, tools
    # Search duration per mode and the three stages, each with time in it.
    for mode in ("default", "keyword", "semantic"):
        assert value(m, "kb_search_duration_seconds_count", mode=mode) >= 1, mode
    for stage in ("embed", "database", "recheck"):
        assert value(m, "kb_search_stage_seconds_count", stage=stage) >= 4, stage
        assert value(m, "kb_search_stage_seconds_sum", stage=stage) > 0, stage
    # Results returned: alice's searches found something, bob's found nothing.
    assert value(m, "kb_search_results_sum") >= 3
    assert value(m, "kb_search_results_bucket", le="0.0") >= 1
    # Embedder: one query text per non-keyword search (cache off by default).
    assert value(m, "kb_embedder_texts_total", kind="query") >= 3


def test_denials_not_found_and_policy_figures(served: Served) -> None:
    m = scrape(served.url)
    # bob's fetch of alice's document is audited as not found (denied reads the same).
    assert value(m, "kb_audited_calls_total", method="tools/call", outcome="not_found") >= 1
    assert value(m, "kb_audited_calls_total", outcome="ok") >= 4
    assert value(m, "kb_policy_version") >= 1
    assert 0 <= value(m, "kb_policy_age_seconds") < value(m, "kb_policy_max_age_seconds")
    assert value(m, "kb_policy_uncompilable_rules") == 0
    assert value(m, "kb_db_pool_size") >= 1
    assert value(m, "kb_metrics_database_up") == 1


def test_ingestion_and_corpus_from_the_database(served: Served) -> None:
    m = scrape(served.url)
    assert value(m, "kb_source_documents", source="wiki") == 3
    assert value(m, "kb_source_chunks", source="wiki") >= 3
    assert value(m, "kb_ingest_documents_total", source="wiki", result="added") == 3
    assert value(m, "kb_ingest_documents_total", source="wiki", result="failed") == 0
    assert value(m, "kb_ingest_chunks_total", source="wiki") >= 3
    assert value(m, "kb_ingest_runs_total", source="wiki", status="succeeded") == 1
    assert value(m, "kb_ingest_run_duration_seconds_count", source="wiki") == 1
    assert value(m, "kb_ingest_run_duration_seconds_bucket", source="wiki", le="+Inf") == 1
    assert value(m, "kb_source_last_success_timestamp_seconds", source="wiki") > 1.7e9
    assert "kb_queue_jobs" in m and "kb_ingest_oldest_queued_seconds" in m


def test_metrics_are_off_the_mcp_auth_path(served: Served) -> None:
    # No bearer token needed (metrics.bearer_token unset), unlike /mcp.
    assert httpx.get(f"{served.url}/metrics", timeout=60).status_code == 200
    assert httpx.post(f"{served.url}/mcp", json={}, timeout=60).status_code == 401
    # Scraped by address like the probes (Prometheus sends Host: <pod IP>:8000) ...
    by_ip = httpx.get(f"{served.url}/metrics", headers={"Host": "10.1.2.3:8000"}, timeout=60)
    assert by_ip.status_code == 200
    # ... while every other path keeps its DNS-rebinding protection.
    refused = httpx.get(f"{served.url}/readyz/", headers={"Host": "10.1.2.3:8000"}, timeout=60)
    assert refused.status_code == 421
    assert httpx.get(f"{served.url}/metrics", timeout=60).headers["x-request-id"]
    # Nothing a caller sent leaks into the figures: no query text, no principal.
    text = httpx.get(f"{served.url}/metrics", timeout=60).text
    assert "backups restored" not in text and "user:alice" not in text
