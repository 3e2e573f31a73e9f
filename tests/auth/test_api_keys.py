"""API keys end to end: admin REST creates, rotates and revokes them; callers use them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg

from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db.engine import DatabaseTarget
from server.embeddings import Embedder
from server.settings import Settings
from tests.auth.test_http_auth import bearer, serve


def test_api_key_lifecycle_over_http(
    make_settings: Callable[..., Settings],
    db_target: DatabaseTarget,
    embedder: Embedder,
    fresh_database: str,
) -> None:
    with serve(
        make_settings, db_target, embedder, mode="dev", admin_principals=["user:root", "svc:ops"]
    ) as (
        url,
        settings,
    ):
        issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
        root = bearer(issuer.mint("root", scopes=["kb.admin"]))
        alice = bearer(issuer.mint("alice", scopes=["kb.read", "kb.admin"]))

        # Non-admins cannot create keys.
        r = httpx.post(f"{url}/admin/keys", headers=alice, json={"name": "etl"})
        assert r.status_code == 403

        r = httpx.post(
            f"{url}/admin/keys",
            headers=root,
            json={"name": "etl", "sources": ["wiki"], "collections": ["eng/docs"]},
        )
        assert r.status_code == 201, r.text
        created = r.json()
        secret = created["secret"]
        assert secret.startswith("kb_") and secret.count("_") == 2
        prefix = created["key"]["prefix"]
        assert secret.startswith(f"kb_{prefix}_")
        assert created["key"]["principal"] == "svc:etl"
        assert created["key"]["created_by"] == "user:root"

        who = httpx.get(f"{url}/whoami", headers=bearer(secret))
        assert who.status_code == 200, who.text
        assert who.json() == {
            "subject": "svc:etl",
            "principals": ["svc:etl"],
            "client_id": f"kb_{prefix}",
            "restrict_sources": ["wiki"],
            "restrict_collections": ["eng/docs"],
        }
        # An API key is never admin unless its principal is; a bootstrap admin's key is,
        # without any OAuth admin scope.
        assert httpx.get(f"{url}/admin/keys", headers=bearer(secret)).status_code == 403
        ops = httpx.post(f"{url}/admin/keys", headers=root, json={"name": "ops"}).json()
        assert httpx.get(f"{url}/admin/keys", headers=bearer(ops["secret"])).status_code == 200
        httpx.delete(f"{url}/admin/keys/{ops['key']['prefix']}", headers=root)

        # A wrong secret with the right prefix, and a key of the wrong shape: 401.
        wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
        assert httpx.get(f"{url}/whoami", headers=bearer(wrong)).status_code == 401
        assert httpx.get(f"{url}/whoami", headers=bearer("kb_short")).status_code == 401

        # Only the hash is stored; last_used_at was set by the use above.
        with psycopg.connect(fresh_database) as conn:
            row = conn.execute(
                "SELECT key_hash, last_used_at FROM api_keys WHERE key_prefix = %s", (prefix,)
            ).fetchone()
        assert row is not None
        assert secret not in row[0] and len(row[0]) == 64
        assert row[1] is not None

        listed = httpx.get(f"{url}/admin/keys", headers=root).json()
        assert [k["prefix"] for k in listed] == [prefix]
        assert "secret" not in listed[0] and "key_hash" not in listed[0]

        # Rotation: the new key works, the old one stops at once.
        r = httpx.post(f"{url}/admin/keys/{prefix}/rotate", headers=root)
        assert r.status_code == 201, r.text
        rotated = r.json()
        assert rotated["key"]["rotated_from"] == created["key"]["id"]
        assert rotated["key"]["sources"] == ["wiki"]
        assert httpx.get(f"{url}/whoami", headers=bearer(secret)).status_code == 401
        new_secret = rotated["secret"]
        assert httpx.get(f"{url}/whoami", headers=bearer(new_secret)).status_code == 200

        # Revocation: 401 from then on.
        new_prefix = rotated["key"]["prefix"]
        r = httpx.delete(f"{url}/admin/keys/{new_prefix}", headers=root)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        r = httpx.get(f"{url}/whoami", headers=bearer(new_secret))
        assert r.status_code == 401
        assert "resource_metadata=" in r.headers["www-authenticate"]
        assert httpx.delete(f"{url}/admin/keys/nosuchkey", headers=root).status_code == 404

        # Expiry: a key past its expires_at is refused.
        r = httpx.post(
            f"{url}/admin/keys",
            headers=root,
            json={"name": "batch", "expires_at": "2999-01-01T00:00:00Z"},
        )
        batch = r.json()
        assert httpx.get(f"{url}/whoami", headers=bearer(batch["secret"])).status_code == 200
        with psycopg.connect(fresh_database) as conn:
            conn.execute(
                "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
                (batch["key"]["id"],),
            )
        assert httpx.get(f"{url}/whoami", headers=bearer(batch["secret"])).status_code == 401

        # Bad input: a clear 400 or 422, nothing created.
        bad = [
            {"name": "Bad Name!"},
            {"name": "anonymous"},
            {"name": "x", "expires_at": "2000-01-01T00:00:00Z"},
            {"name": "x", "sources": []},
        ]
        for body in bad:
            r = httpx.post(f"{url}/admin/keys", headers=root, json=body)
            assert r.status_code == 400, (body, r.text)
        assert httpx.post(f"{url}/admin/keys", headers=root, json={"nam": "x"}).status_code == 422
