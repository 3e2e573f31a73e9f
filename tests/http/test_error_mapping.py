"""REST maps the error tree once: the same error is the same status on every /admin route
(issue 8: DatabaseUnavailable was a 400 in policy routes and a 500 in key routes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from core.errors import (
    AccessDenied,
    AuthError,
    ConfigError,
    ConnectorError,
    DatabaseUnavailable,
    InsufficientScope,
    InvalidRequest,
    KBError,
    NotFound,
    PolicyError,
)
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings.base import Embedder
from server.http.errors import status_of
from server.settings import Settings
from server.usecases.errors import Conflict
from tests.usecases.test_acceptance import admin_server


def test_the_tree_maps_once() -> None:
    assert [
        status_of(e)
        for e in (
            NotFound("x"),
            Conflict("x"),
            InvalidRequest("x"),
            ConfigError("x"),
            ConnectorError("x"),
            PolicyError("x"),
            AccessDenied("x"),
            InsufficientScope("x", ["kb.admin"]),
            AuthError("x"),
            DatabaseUnavailable("x"),
            KBError("x"),
        )
    ] == [404, 409, 400, 400, 400, 400, 403, 403, 401, 503, 500]


def test_database_unavailable_is_503_on_every_admin_route(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    fresh_database: str,
    tmp_path: Path,
) -> None:
    docs = tmp_path / "files" / "docs"
    docs.mkdir(parents=True)
    with admin_server(make_settings, db_target, embedder, tmp_path / "files") as (url, settings):
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        root = {"Authorization": "Bearer " + issuer.mint("root", scopes=["kb.admin"])}
        writes = [
            ("POST", "/admin/keys", {"name": "etl"}),
            ("POST", "/admin/policies/rules", {"subject": "user:a", "object": "*"}),
            ("POST", "/admin/policies/roles", {"member": "user:a", "role": "role:x"}),
            ("POST", "/admin/sources", {"name": "docs", "kind": "files", "root": str(docs)}),
        ]
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
        try:
            answers = [
                httpx.request(method, f"{url}{path}", headers=root, json=body)
                for method, path, body in writes
            ]
        finally:
            with psycopg.connect(fresh_database, autocommit=True) as conn:
                conn.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
        assert [a.status_code for a in answers] == [503] * len(writes), [a.text for a in answers]
        assert all(a.headers.get("retry-after") == "5" for a in answers)
        # Nothing was changed without its row.
        assert httpx.get(f"{url}/admin/keys", headers=root).json() == []
        assert httpx.get(f"{url}/admin/policies", headers=root).json()["items"] == []
        assert httpx.get(f"{url}/admin/sources", headers=root).json() == []
        # Other branches of the tree, same mapping on every router.
        assert httpx.delete(f"{url}/admin/policies/424242", headers=root).status_code == 404
        assert httpx.delete(f"{url}/admin/keys/nokey000000", headers=root).status_code == 404
        assert httpx.get(f"{url}/admin/jobs/424242", headers=root).status_code == 404
        bad = {"subject": "alice", "object": "path:/hr/*/x"}
        assert httpx.post(f"{url}/admin/policies/rules", headers=root, json=bad).status_code == 400
