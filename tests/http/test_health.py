"""Health and readiness through real HTTP (uvicorn in a thread)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from server.app import create_app
from server.db import migrate
from server.db.embedded import EmbeddedPostgres
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.settings import Settings
from tests.support.live_server import LiveServer


def test_ready_when_database_migrated_and_model_loaded(
    settings: Settings, db_target: DatabaseTarget, embedder: Embedder
) -> None:
    app = create_app(settings, target=db_target, embedder=embedder)
    with LiveServer(app) as srv:
        assert httpx.get(f"{srv.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{srv.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        docs = httpx.get(f"{srv.url}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_not_ready_when_migrations_are_behind(
    settings: Settings, db_target: DatabaseTarget, embedder: Embedder
) -> None:
    app = create_app(settings, target=db_target, embedder=embedder, run_migrations=False)
    with LiveServer(app) as srv:
        migrate.downgrade(db_target.url, "0001")
        ready = httpx.get(f"{srv.url}/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["checks"]["migrations"].startswith("at 0001")
        assert httpx.get(f"{srv.url}/healthz").status_code == 200


def _set_connections(admin_uri: str, database: str, *, allowed: bool) -> None:
    """Refuse (and drop) or allow again every connection to one database."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.SQL("true" if allowed else "false")
            )
        )
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )


def test_readyz_reports_policy_age_and_fails_past_the_bound(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    pg_server: EmbeddedPostgres,
) -> None:
    settings = make_settings(policy={"poll_interval_s": 0.2, "max_age_s": 1.0})
    database = conninfo_to_dict(db_target.dsn)["dbname"]
    app = create_app(settings, target=db_target, embedder=embedder)
    with LiveServer(app) as srv:
        body = httpx.get(f"{srv.url}/readyz").json()
        assert body["checks"]["policy"] == "ok"
        assert 0 <= body["policy"]["age_s"] < 1.0 and body["policy"]["max_age_s"] == 1.0

        # LISTEN and the poll both fail: past the bound the replica says it is not ready,
        # and why.
        _set_connections(pg_server.admin_uri, str(database), allowed=False)
        try:
            deadline = time.monotonic() + 10
            while True:
                ready = httpx.get(f"{srv.url}/readyz")
                if ready.json()["checks"]["policy"] != "ok":
                    break
                assert time.monotonic() < deadline, "the policy never went stale"
                time.sleep(0.1)
            assert ready.status_code == 503
            assert ready.json()["checks"]["policy"].startswith("stale: unconfirmed for")
            assert ready.json()["policy"]["age_s"] > 1.0
        finally:
            _set_connections(pg_server.admin_uri, str(database), allowed=True)

        # The database answers again: confirmed by the next poll, ready again.
        deadline = time.monotonic() + 15
        while (ready := httpx.get(f"{srv.url}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.1)
        assert ready.json()["checks"]["policy"] == "ok"
