"""Who may read /metrics, and what it says when the database is gone (app in uvicorn)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from server.app import create_app
from server.db.embedded import EmbeddedPostgres
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.settings import Settings
from tests.observability.conftest import scrape
from tests.support.live_server import LiveServer


def test_bearer_token_guards_metrics_only(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    settings = make_settings(metrics={"bearer_token": "scrape-secret-1"})
    with LiveServer(create_app(settings, target=db_target, embedder=embedder)) as srv:
        url = f"{srv.url}/metrics"
        assert httpx.get(url, timeout=60).status_code == 401
        for wrong in ("Bearer scrape-secret-2", "Bearer scrape-secret-1x", "scrape-secret-1", ""):
            assert httpx.get(url, headers={"Authorization": wrong}, timeout=60).status_code == 401
        families = scrape(srv.url, token="scrape-secret-1")
        assert "kb_policy_version" in families and "kb_mcp_requests" in families
        # The probes stay open.
        assert httpx.get(f"{srv.url}/healthz", timeout=60).status_code == 200


def test_metrics_can_be_switched_off(
    make_settings: Callable[..., Settings], db_target: DatabaseTarget, embedder: Embedder
) -> None:
    settings = make_settings(metrics={"enabled": False})
    with LiveServer(create_app(settings, target=db_target, embedder=embedder)) as srv:
        assert httpx.get(f"{srv.url}/metrics", timeout=60).status_code == 404


def test_database_outage_reads_as_down_not_as_stale_figures(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    pg_server: EmbeddedPostgres,
    fresh_database: str,
) -> None:
    settings = make_settings(metrics={"database_interval_s": 0})
    name = str(conninfo_to_dict(fresh_database)["dbname"])
    with LiveServer(create_app(settings, target=db_target, embedder=embedder)) as srv:
        before = scrape(srv.url)
        assert before["kb_metrics_database_up"].samples[0].value == 1
        assert "kb_source_documents" in before
        with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        try:
            during = scrape(srv.url)
            assert during["kb_metrics_database_up"].samples[0].value == 0
            assert "kb_source_documents" not in during  # no stale figures
            assert "kb_policy_age_seconds" in during  # the process's own state still reads
        finally:
            with psycopg.connect(pg_server.admin_uri, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
                )
