"""``/admin/sources`` and ``/admin/jobs`` over real HTTP, behind the admin role."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings.base import Embedder
from server.settings import Settings
from tests.ingest.helpers import sync, sync_engine
from tests.jobs.conftest import write_notes
from tests.support.live_server import LiveServer, free_port


def test_sources_and_jobs_endpoints(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes"
    write_notes(notes, 2)
    (notes / "empty.md").write_bytes(b"")
    port = free_port()
    settings = make_settings(
        http={"port": port},
        auth={"mode": "dev", "admin_principals": ["user:root"]},
        sources=[{"name": "notes", "kind": "files", "root": str(notes)}],
        ingest={"runtime_file_roots": [str(tmp_path)]},
    )
    with sync_engine(settings) as engine:
        run_id = sync(settings, engine, embedder, "notes").run_id
    issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
    root = {"Authorization": "Bearer " + issuer.mint("root", scopes=["kb.read", "kb.admin"])}
    alice = {"Authorization": "Bearer " + issuer.mint("alice", scopes=["kb.read", "kb.admin"])}
    app = create_app(settings, target=db_target, embedder=embedder)
    with LiveServer(app, port=port) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        endpoints = [
            ("GET", "/admin/sources"),
            ("GET", "/admin/jobs"),
            ("POST", "/admin/sources/notes/sync"),
            ("GET", f"/admin/jobs/{run_id}"),
            ("DELETE", "/admin/sources/notes"),
        ]
        for method, path in endpoints:
            assert http.request(method, path).status_code == 401
            assert http.request(method, path, headers=alice).status_code == 403

        sources = http.get("/admin/sources", headers=root).json()
        assert [(s["name"], s["documents"], s["last_run"]["status"]) for s in sources] == [
            ("notes", 2, "succeeded")
        ]
        run = http.get(f"/admin/jobs/{run_id}", headers=root).json()
        assert (run["docs_added"], run["docs_failed"]) == (2, 1)
        assert run["failures"][0]["external_id"] == "empty.md"
        assert "0 bytes" in run["failures"][0]["reason"]
        assert http.get("/admin/jobs/424242", headers=root).status_code == 404

        missing = {"name": "gone", "kind": "files", "root": str(tmp_path / "x")}
        refused = http.post("/admin/sources", headers=root, json=missing)
        assert refused.status_code == 400 and "x" in refused.json()["detail"]
        too_long = {"name": "long", "kind": "files", "root": str(tmp_path / ("x" * 300))}
        refused = http.post("/admin/sources", headers=root, json=too_long)
        assert refused.status_code == 400 and "File name too long" in refused.json()["detail"]
        etc = {"name": "etc", "kind": "files", "root": "/etc"}
        refused = http.post("/admin/sources", headers=root, json=etc)
        assert refused.status_code == 400
        assert "ingest.runtime_file_roots" in refused.json()["detail"]
        other = tmp_path / "other"
        write_notes(other, 1)
        definition = {"name": "other", "kind": "files", "root": str(other)}
        created = http.post("/admin/sources", headers=root, json=definition)
        assert created.status_code == 201 and created.json()["origin"] == "api"
        assert http.get("/admin/sources/other", headers=root).json()["documents"] == 0

        queued = http.post("/admin/sources/other/sync", headers=root)
        assert queued.status_code == 202
        again = http.post("/admin/sources/other/sync", headers=root)
        assert again.status_code == 409 and "already queued" in again.json()["detail"]
        jobs = http.get("/admin/jobs", params={"source": "other"}, headers=root).json()
        assert [(j["id"], j["status"]) for j in jobs] == [(queued.json()["run_id"], "queued")]

        assert http.delete("/admin/sources/notes", headers=root).status_code == 400  # in config
        assert http.delete("/admin/sources/other", headers=root).status_code == 204
        assert http.get("/admin/sources/other", headers=root).status_code == 404
        assert http.post("/admin/sources/nope/sync", headers=root).status_code == 404
