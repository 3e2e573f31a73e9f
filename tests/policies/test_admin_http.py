"""``/admin/policies`` through a real uvicorn server with dev-issued tokens."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import psycopg

from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.settings import Settings
from tests.auth.test_http_auth import bearer, serve

DOC = "00000000-0000-0000-0000-0000000000e1"


def test_policy_administration_over_rest(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    fresh_database: str,
) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO sources (name, kind) VALUES ('files', 'files')")
        conn.execute(
            "INSERT INTO documents (id, source, external_id, uri, title, content_type,"
            " content_hash, collection, path, level, acl) VALUES (%s, 'files', 'x', 'file:///x',"
            " 't', 'text/plain', 'h', 'hr/payroll', '/hr/payroll/x', 1, '{group:finance}')",
            (uuid.UUID(DOC),),
        )
    with serve(make_settings, db_target, embedder, mode="dev", admin_principals=["user:root"]) as (
        url,
        settings,
    ):
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        root = bearer(issuer.mint("root", scopes=["kb.admin"]))
        carol = bearer(issuer.mint("carol", scopes=["kb.admin"]))
        api = f"{url}/admin/policies"

        assert httpx.get(api).status_code == 401
        assert httpx.get(api, headers=carol).status_code == 403

        r = httpx.post(f"{api}/rules", headers=root, json={"subject": "alice", "object": "*"})
        assert r.status_code == 400 and "prefix" in r.json()["detail"]
        r = httpx.post(
            f"{api}/rules",
            headers=root,
            json={"subject": "role:hr", "object": "collection:hr", "max_level": 1},
        )
        assert r.status_code == 201 and r.json()["version"] == 1
        r = httpx.post(
            f"{api}/roles", headers=root, json={"member": "user:carol", "role": "role:hr"}
        )
        assert r.json()["version"] == 2

        why = httpx.get(f"{api}/explain", headers=root, params={"as": "user:carol", "doc": DOC})
        assert why.status_code == 200 and why.json()["allowed"] is True
        assert why.json()["rules"][0]["chain"] == ["user:carol", "role:hr"]
        readers = httpx.get(f"{api}/who-can", headers=root, params={"doc": DOC}).json()
        assert [r["principal"] for r in readers] == ["user:carol", "user:root"]
        missing = httpx.get(f"{api}/who-can", headers=root, params={"doc": str(uuid.uuid4())})
        assert missing.status_code == 404

        proposed = {"rules": [{"subject": "user:dan", "object": "source:files"}]}
        diff = httpx.post(f"{api}/diff", headers=root, json={"policy": proposed}).json()
        assert {d["principal"]: (d["gained"], d["lost"]) for d in diff} == {
            "user:carol": ([], [DOC]),
            "user:dan": ([DOC], []),
        }
        tests = {
            "tests": [
                {"as": ["user:carol"], "doc": DOC, "expect": "allow"},
                {"as": "user:dan", "document": {"collection": "hr"}, "expect": "deny"},
            ]
        }
        result = httpx.post(f"{api}/test", headers=root, json=tests).json()
        assert result["passed"] is True
        lint = httpx.post(
            f"{api}/lint", headers=root, json={"policy": {"roles": {"role:a": "role:a"}}}
        ).json()
        assert lint["ok"] is False

        # role:admin granted by the policy makes carol an admin of the policy itself.
        r = httpx.post(
            f"{api}/roles", headers=root, json={"member": "role:hr", "role": "role:admin"}
        )
        assert r.status_code == 201
        listing = httpx.get(api, headers=carol)
        assert listing.status_code == 200 and listing.json()["version"] == 3
        rule_id = next(i["id"] for i in listing.json()["items"] if i["kind"] == "rule")
        assert httpx.delete(f"{api}/{rule_id}", headers=carol).json()["version"] == 4
        assert httpx.delete(f"{api}/{rule_id}", headers=carol).status_code == 404

        r = httpx.post(f"{api}/import", headers=root, json={"policy": proposed, "replace": True})
        assert r.json() == {"version": 5, "added": 1, "removed": 2}
        export = httpx.get(f"{api}/export", headers=root)
        assert "user:dan" in export.text and "role:hr" not in export.text
        assert httpx.get(api, headers=carol).status_code == 403  # carol's admin role is gone

    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute(
            "SELECT method, transport, outcome FROM audit_log WHERE method IN"
            " ('policy.add', 'policy.remove', 'policy.import', 'policy.replace') ORDER BY id"
        ).fetchall()
    assert ("policy.add", "rest", "invalid") in rows
    assert rows.count(("policy.add", "rest", "ok")) == 3
    assert ("policy.remove", "rest", "not_found") in rows
    assert rows[-1] == ("policy.replace", "rest", "ok")
