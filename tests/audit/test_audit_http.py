"""The audit log through the admin REST API: rows for every call, append-only, fail-closed."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import psycopg
import pytest

from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.settings import Settings
from tests.auth.test_http_auth import bearer, serve


def test_admin_calls_are_audited_and_the_log_is_append_only(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    fresh_database: str,
) -> None:
    with serve(make_settings, db_target, embedder, mode="dev", admin_principals=["user:root"]) as (
        url,
        settings,
    ):
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        root = bearer(issuer.mint("root", groups=["ops"], scopes=["kb.admin"]))
        bob = bearer(issuer.mint("bob", scopes=["kb.read", "kb.admin"]))

        assert (
            httpx.post(f"{url}/admin/keys", headers=root, json={"name": "etl"}).status_code == 201
        )
        assert httpx.get(f"{url}/admin/keys", headers=bob).status_code == 403
        assert httpx.get(f"{url}/admin/keys").status_code == 401
        assert httpx.delete(f"{url}/admin/keys/missing0000", headers=root).status_code == 404

        r = httpx.get(f"{url}/admin/audit", headers=root, params={"limit": 10})
        assert r.status_code == 200
        rows = r.json()
        assert [(x["method"], x["target"], x["outcome"]) for x in rows] == [
            ("keys.create", "etl", "ok"),
            ("admin.authorize", "GET /admin/keys", "denied"),
            ("admin.authorize", "GET /admin/keys", "denied"),
            ("keys.revoke", "missing0000", "not_found"),
        ]
        first = rows[0]
        assert first["principals"] == ["group:ops", "user:root"]
        assert first["client_id"] == "kb-cli" and first["transport"] == "rest"
        assert first["latency_ms"] > 0
        # The scrubbed request and what it produced (never the secret).
        assert first["arguments"]["name"] == "etl"
        assert first["arguments"]["result"]["principal"] == "svc:etl"
        assert rows[1]["principals"] == ["user:bob"]
        assert rows[2]["principals"] == []  # refused before anyone was identified
        # Filters.
        only_bob = httpx.get(f"{url}/admin/audit", headers=root, params={"principal": "user:bob"})
        assert [x["principals"] for x in only_bob.json()] == [["user:bob"]]
        denied = httpx.get(f"{url}/admin/audit", headers=root, params={"outcome": "denied"})
        assert len(denied.json()) == 2
        # Reading the log is recorded as well.
        reads = httpx.get(f"{url}/admin/audit", headers=root, params={"limit": 3}).json()
        assert reads[-1]["method"] == "audit.read"
        assert httpx.get(f"{url}/admin/audit", headers=bob).status_code == 403

    # Append-only: the trigger refuses UPDATE, DELETE and TRUNCATE, even for the owner.
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        assert count is not None and count[0] >= 5
        for stmt in (
            "UPDATE audit_log SET outcome = 'ok'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(stmt)
        after = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        assert after == count


def _rename_audit_table(uri: str, old: str, new: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


@pytest.mark.parametrize("fail_closed", [True, False])
def test_audit_store_down(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    fresh_database: str,
    caplog: pytest.LogCaptureFixture,
    fail_closed: bool,
) -> None:
    port_settings = {"mode": "dev", "admin_principals": ["user:root"]}
    with serve(make_settings, db_target, embedder, **port_settings) as (url, settings):
        # serve() builds settings itself; audit.fail_closed is set on the live object.
        settings.audit.fail_closed = fail_closed
        root = bearer(
            DevIssuer(settings.home_dir, audience=resource_uri(settings)).mint(
                "root", scopes=["kb.admin"]
            )
        )
        assert httpx.get(f"{url}/admin/keys", headers=root).status_code == 200
        _rename_audit_table(fresh_database, "audit_log", "audit_log_away")
        try:
            with caplog.at_level(logging.ERROR, logger="server.audit.recorder"):
                r = httpx.post(f"{url}/admin/keys", headers=root, json={"name": "etl"})
        finally:
            _rename_audit_table(fresh_database, "audit_log_away", "audit_log")
        if fail_closed:
            assert r.status_code == 503
            assert r.json() == {
                "detail": "the audit log cannot be written, so the call was refused"
            }
            assert "secret" not in r.text
        else:
            assert r.status_code == 201
        # Either way the record is not lost: it is in the error log.
        assert any("audit write failed" in m and "keys.create" in m for m in caplog.messages)
        # With the table back, calls go through and are recorded again.
        listed = httpx.get(f"{url}/admin/keys", headers=root)
        assert listed.status_code == 200
        # Fail-closed: the audit row and the key were one transaction, so no key exists
        # (the old code answered 503 with the key already committed).
        names = [k["name"] for k in listed.json()]
        assert names == ([] if fail_closed else ["etl"])
