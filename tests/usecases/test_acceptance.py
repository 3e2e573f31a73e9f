"""Issue 8 acceptance: 20 admin actions through REST and the CLI, one of whose audit
writes is made to fail; afterwards the audit table says exactly which changes happened,
by whom, with what scrubbed parameters, and no change exists without its row."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.cli.main import app as kb_app
from server.db.engine import DatabaseTarget
from server.embeddings.base import Embedder
from server.settings import Settings
from server.usecases.admin import os_user
from tests.support.live_server import LiveServer, free_port

MARKER = "audit-fails-here"
# The audit write of an ok row naming the marker fails, as a full disk or a revoked grant
# would; the failure row of that call (outcome "error") can still be written.
FAIL_MARKED = f"""
CREATE FUNCTION kb_test_fail_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.outcome = 'ok' AND NEW.arguments::text LIKE '%{MARKER}%' THEN
    RAISE EXCEPTION 'audit refused for the test';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER kb_test_fail_marked BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION kb_test_fail_marked();
"""


@contextmanager
def admin_server(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    files_root: Path,
) -> Iterator[tuple[str, Settings]]:
    port = free_port()
    settings = make_settings(
        http={"port": port},
        auth={"mode": "dev", "admin_principals": ["user:root"]},
        ingest={"runtime_file_roots": [str(files_root)]},
    )
    app = create_app(settings, target=db_target, embedder=embedder)
    with LiveServer(app, port=port) as srv:
        yield srv.url, settings


def _rows(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT method, transport, principals, client_id, target, arguments, outcome,"
            " error, policy_version FROM audit_log WHERE method <> 'audit.read' ORDER BY id"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _scalar(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    return row[0] if row else None


def test_twenty_admin_actions_leave_exactly_their_rows(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    fresh_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = tmp_path / "files" / "docs"
    docs.mkdir(parents=True)
    (docs / "a.md").write_text("# A\n\nhello\n")
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(FAIL_MARKED)
    # The CLI of the same deployment: same database, its own process state.
    for name in ("KB_CONFIG", "KB_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    monkeypatch.setenv("KB_HOME", str(tmp_path / "cli-home"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def kb(*args: str) -> tuple[int, str]:
        result = runner.invoke(kb_app, list(args))
        return result.exit_code, result.output

    with (
        ExitStack() as stack,
        admin_server(make_settings, db_target, embedder, tmp_path / "files") as (url, settings),
    ):
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        root = {"Authorization": "Bearer " + issuer.mint("root", scopes=["kb.admin"])}
        bob = {"Authorization": "Bearer " + issuer.mint("bob", scopes=["kb.admin"])}
        http = httpx.Client(base_url=url, timeout=60)
        stack.callback(http.close)

        # --- REST ------------------------------------------------------------------------
        created = http.post(  # 1
            "/admin/keys",
            headers=root,
            json={
                "name": "etl",
                "scopes": ["kb.read"],
                "sources": ["docs"],
                "expires_at": "2030-01-01T00:00:00Z",
            },
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        refused = http.post("/admin/keys", headers=root, json={"name": MARKER})  # 2
        assert refused.status_code == 503, refused.text
        assert http.get("/admin/keys", headers=root).status_code == 200  # 3
        role = http.post(  # 4
            "/admin/policies/roles",
            headers=root,
            json={"member": "group:eng", "role": "role:staff"},
        )
        assert role.status_code == 201, role.text
        rule = http.post(  # 5
            "/admin/policies/rules",
            headers=root,
            json={"subject": "role:staff", "object": "collection:eng"},
        )
        assert rule.status_code == 201, rule.text
        source = http.post(  # 6
            "/admin/sources",
            headers=root,
            json={"name": "docs", "kind": "files", "root": str(docs)},
        )
        assert source.status_code == 201, source.text
        assert http.get("/admin/sources", headers=root).status_code == 200  # 7
        prefix = created.json()["key"]["prefix"]
        rotated = http.post(f"/admin/keys/{prefix}/rotate", headers=root)  # 8
        assert rotated.status_code == 201, rotated.text
        assert http.get("/admin/keys", headers=bob).status_code == 403  # 9
        items = http.get("/admin/policies", headers=root).json()["items"]
        role_id = next(i["id"] for i in items if i["kind"] == "role")
        removed = http.delete(f"/admin/policies/{role_id}", headers=root)  # 10
        assert removed.status_code == 200, removed.text

        # --- CLI -------------------------------------------------------------------------
        code, out = kb("keys", "create", "cli-svc", "--source", "docs")  # 11
        assert code == 0, out
        cli_prefix = next(
            k["prefix"]
            for k in http.get("/admin/keys", headers=root).json()
            if k["name"] == "cli-svc"
        )
        assert kb("keys", "list")[0] == 0  # 12
        code, out = kb("policy", "add", "role", "user:carol", "role:staff")  # 13
        assert code == 0, out
        assert kb("policy", "list")[0] == 0  # 14
        assert kb("sources", "list")[0] == 0  # 15
        code, out = kb("sources", "remove", "docs")  # 16: not a terminal, no --yes
        assert code == 2 and "--yes" in out, out
        code, out = kb("sources", "remove", "docs", "--yes")  # 17
        assert code == 0, out
        code, out = kb("keys", "revoke", cli_prefix)  # 18
        assert code == 0, out
        code, out = kb("policy", "remove", "99999", "--yes")  # 19
        assert code == 1 and "99999" in out, out
        assert kb("jobs", "list")[0] == 0  # 20

        # The log is readable over REST, by the admin only.
        assert http.get("/admin/audit", headers=root).status_code == 200

    rows = _rows(fresh_database)
    operator = sorted(["role:admin", f"user:cli:{os_user()}"])
    root_p, bob_p = ["user:root"], ["user:bob"]
    assert [(r["method"], r["transport"], r["principals"], r["outcome"]) for r in rows] == [
        ("keys.create", "rest", root_p, "ok"),
        ("keys.create", "rest", root_p, "error"),  # 2: rolled back, recorded as failed
        ("keys.list", "rest", root_p, "ok"),
        ("policy.add", "rest", root_p, "ok"),
        ("policy.add", "rest", root_p, "ok"),
        ("sources.add", "rest", root_p, "ok"),
        ("sources.list", "rest", root_p, "ok"),
        ("keys.rotate", "rest", root_p, "ok"),
        ("admin.authorize", "rest", bob_p, "denied"),
        ("policy.list", "rest", root_p, "ok"),  # the test looks up the rule id
        ("policy.remove", "rest", root_p, "ok"),
        ("keys.create", "cli", operator, "ok"),
        ("keys.list", "rest", root_p, "ok"),  # the test looks up the key prefix
        ("keys.list", "cli", operator, "ok"),
        ("policy.add", "cli", operator, "ok"),
        ("policy.list", "cli", operator, "ok"),
        ("sources.list", "cli", operator, "ok"),
        # 16 refused before anything ran: no change, no row
        ("sources.remove", "cli", operator, "ok"),
        ("keys.revoke", "cli", operator, "ok"),
        ("policy.remove", "cli", operator, "not_found"),
        ("jobs.list", "cli", operator, "ok"),
    ]
    assert {r["client_id"] for r in rows if r["transport"] == "cli"} == {"kb-cli"}

    # Scrubbed parameters: what was asked and what came out, never a secret.
    etl = rows[0]["arguments"]
    assert etl["name"] == "etl" and etl["scopes"] == ["kb.read"] and etl["sources"] == ["docs"]
    assert etl["expires_at"] == "2030-01-01T00:00:00+00:00"
    assert etl["result"]["principal"] == "svc:etl" and etl["result"]["prefix"] == prefix
    assert all(secret not in json.dumps(r["arguments"]) for r in rows)
    failed = rows[1]
    assert failed["arguments"]["name"] == MARKER and "result" not in failed["arguments"]
    assert failed["error"] == "the audit log cannot be written, so the call was refused"
    assert rows[3]["arguments"]["add"] == ["group:eng -> role:staff"] or rows[3]["arguments"]
    assert rows[5]["arguments"]["definition"] == {
        "name": "docs",
        "kind": "files",
        "root": str(docs),
    }
    assert rows[10]["arguments"]["remove_ids"] == [role_id]
    assert rows[17]["target"] == "docs" and rows[18]["target"] == cli_prefix
    policy_rows = [r for r in rows if r["method"].startswith("policy.") and r["outcome"] == "ok"]
    writes = [r for r in policy_rows if r["method"] != "policy.list"]
    assert [r["policy_version"] for r in writes] == [1, 2, 3, 4]

    # No change without its row, and the failed change left nothing behind.
    with psycopg.connect(fresh_database) as conn:
        keys = conn.execute("SELECT name, revoked_at IS NOT NULL FROM api_keys ORDER BY created_at")
        assert [tuple(k) for k in keys.fetchall()] == [
            ("etl", True),  # rotated away (grace 0)
            ("etl", False),
            ("cli-svc", True),
        ]
    key_rows = [r for r in rows if r["method"] in ("keys.create", "keys.rotate")]
    assert sum(r["outcome"] == "ok" for r in key_rows) == 3
    assert _scalar(fresh_database, "SELECT max(version) FROM policy_versions") == 4
    assert _scalar(fresh_database, "SELECT count(*) FROM sources WHERE name = 'docs'") == 0
