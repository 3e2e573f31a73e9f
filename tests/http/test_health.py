"""Health and readiness through real HTTP (uvicorn in a thread)."""

from __future__ import annotations

import httpx

from server.app import create_app
from server.db import migrate
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
