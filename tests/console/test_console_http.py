"""The console's routes over plain HTTP: who gets in, and what a forged form gets.

Attacks: no session, a forged session cookie, a non-admin token (carrying the admin
scope even), an admin-role API key narrowed to one source, a bad token, a sign-in form
without its double-submitted value, POSTs without or with a wrong CSRF token, an open
redirect through ``next``, and a session used after sign-out.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.console.browser import eventually, synced
from tests.console.harness import Stack
from tests.support.server_process import KB, REPO

# A real server per module (about a minute to start on a loaded machine).
pytestmark = pytest.mark.slow

PAGES = [
    "/admin/ui/",
    "/admin/ui/sources",
    "/admin/ui/jobs",
    "/admin/ui/policies",
    "/admin/ui/search",
    "/admin/ui/audit",
    "/admin/ui/audit.csv",
]


def _client(stack: Stack, cookie: str | None = None) -> httpx.Client:
    cookies = {"kb_console": cookie} if cookie is not None else None
    return httpx.Client(base_url=stack.url, timeout=120, follow_redirects=False, cookies=cookies)


def _sign_in(http: httpx.Client, token: str, next_: str = "/admin/ui/") -> httpx.Response:
    form = http.get("/admin/ui/signin")
    assert form.status_code == 200
    pre = re.search(r'name="pre" value="([^"]+)"', form.text)
    assert pre is not None
    return http.post("/admin/ui/signin", data={"pre": pre[1], "token": token, "next": next_})


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found[1]


def _rules(stack: Stack) -> list[str]:
    with stack.admin() as http:
        items = http.get("/admin/policies").json()["items"]
    return [i["subject"] for i in items if i["kind"] == "rule"]


@pytest.mark.parametrize("path", PAGES)
def test_unauthenticated_is_sent_to_sign_in(stack: Stack, path: str) -> None:
    with _client(stack) as http:
        answer = http.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/ui/signin?next=")
    with _client(stack, "not-a-session") as http:
        assert http.get(path).status_code == 303


def test_admin_signs_in_with_a_strict_httponly_cookie(stack: Stack) -> None:
    with _client(stack) as http:
        answer = _sign_in(http, stack.root_token)
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/ui/"
        cookie = next(
            v for k, v in answer.headers.multi_items() if k == "set-cookie" and "kb_console=" in v
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin/ui" in cookie
        # Plain HTTP here: the cookie is not marked Secure (it is over TLS).
        assert "Secure" not in cookie
        for path in PAGES:
            page = http.get(path)
            assert page.status_code == 200, (path, page.text[:300])
        overview = http.get("/admin/ui/")
        assert "user:root" in overview.text and "handbook" in overview.text
        assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("who", "status", "reason"),
    [
        ("alice", 403, "the admin role is required"),
        ("narrowed", 403, "narrowed"),
        ("garbage", 401, ""),
    ],
)
def test_non_admins_are_refused(stack: Stack, who: str, status: int, reason: str) -> None:
    token = {
        "alice": stack.alice_token,
        "narrowed": stack.narrowed_key,
        "garbage": "kb_" + "x" * 40,
    }[who]
    with _client(stack) as http:
        answer = _sign_in(http, token)
        assert answer.status_code == status
        assert reason in answer.text
        assert "kb_console=" not in answer.headers.get("set-cookie", "")
        assert http.get("/admin/ui/").status_code == 303
    with stack.admin() as admin:
        rows = admin.get("/admin/audit", params={"outcome": "denied", "limit": 1000}).json()
    assert any(r["method"] == "admin.authorize" for r in rows)


def test_sign_in_form_needs_its_double_submitted_value(stack: Stack) -> None:
    with _client(stack) as http:
        answer = http.post(
            "/admin/ui/signin", data={"pre": "forged", "token": stack.root_token, "next": ""}
        )
        assert answer.status_code == 403
        assert "kb_console=" not in answer.headers.get("set-cookie", "")


def test_next_cannot_leave_the_console(stack: Stack) -> None:
    with _client(stack) as http:
        for target in ("https://evil.example/", "//evil.example/admin/ui", "/admin/ui//evil"):
            answer = _sign_in(http, stack.root_token, next_=target)
            assert answer.headers["location"] == "/admin/ui"


def test_forms_refuse_a_missing_or_wrong_csrf_token(stack: Stack) -> None:
    rule = {"step": "apply", "kind": "rule", "subject": "user:mallory", "object": "*"}
    with _client(stack) as http:
        assert _sign_in(http, stack.root_token).status_code == 303
        token = _csrf(http.get("/admin/ui/policies"))
        assert http.post("/admin/ui/policies/rules", data=rule).status_code == 403
        wrong = http.post("/admin/ui/policies/rules", data={**rule, "csrf": token[::-1]})
        assert wrong.status_code == 403
        assert "user:mallory" not in _rules(stack)
        # The same form with the session's token goes through (so the refusals above were
        # the token's doing), then is taken back out.
        good = http.post("/admin/ui/policies/rules", data={**rule, "csrf": token})
        assert good.status_code == 303
        assert "user:mallory" in _rules(stack)
    with stack.admin() as admin:
        items = admin.get("/admin/policies").json()["items"]
        for item in items:
            if item.get("subject") == "user:mallory":
                admin.delete(f"/admin/policies/{item['id']}").raise_for_status()


def test_sign_out_ends_the_session(stack: Stack) -> None:
    with _client(stack) as http:
        assert _sign_in(http, stack.root_token).status_code == 303
        token = _csrf(http.get("/admin/ui/"))
        cookie = http.cookies.get("kb_console", path="/admin/ui")
        assert http.post("/admin/ui/signout", data={"csrf": token}).status_code == 303
    assert cookie
    with _client(stack, cookie) as http:
        assert http.get("/admin/ui/").status_code == 303


def test_token_mint_link_signs_in(stack: Stack) -> None:
    done = subprocess.run(
        [str(KB), "token", "mint", "--sub", "root", "--admin", "--link"],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    link = done.stdout.strip().splitlines()[-1]
    assert link.startswith(f"{stack.url}/admin/ui/signin#token=")
    token = link.split("#token=", 1)[1]
    with _client(stack) as http:
        assert _sign_in(http, token).status_code == 303


@contextmanager
def _signed_in(stack: Stack) -> Iterator[tuple[httpx.Client, str]]:
    with _client(stack) as http:
        assert _sign_in(http, stack.root_token).status_code == 303
        yield http, _csrf(http.get("/admin/ui/"))


def _figure(page: httpx.Response, name: str) -> str:
    found = re.search(rf"<dt>{re.escape(name)}</dt><dd>([^<]*)</dd>", page.text)
    assert found is not None, name
    return found[1].strip()


def test_overview_counts_the_corpus_and_the_searches(stack: Stack) -> None:
    with stack.admin() as admin:
        eventually(lambda: synced(admin, "handbook"), "the handbook's first sync")
    with _signed_in(stack) as (http, _):
        before = _figure(http.get("/admin/ui/"), "Searches (hour / day)")
        hour_before = int(before.split("/")[0])
        found = http.get("/admin/ui/search", params={"as": "group:eng", "q": "backups"})
        assert "Database backups" in found.text and "allowed" in found.text
        page = http.get("/admin/ui/")
        assert _figure(page, "Documents") == "3" and _figure(page, "Chunks") == "3"
        # One search as group:eng; its admin's "missing" search does not run (it found hits).
        assert int(_figure(page, "Searches (hour / day)").split("/")[0]) == hour_before + 1
        assert re.search(r'<svg class="chart[^"]*"[^>]*role="img"', page.text)


def test_sources_forms_add_edit_disable(stack: Stack) -> None:
    folder = stack.home / "forms-source"
    folder.mkdir(exist_ok=True)
    (folder / "a.md").write_text("# A\n\nalpha\n", encoding="utf-8")
    with _signed_in(stack) as (http, token), stack.admin() as admin:
        form = {"csrf": token, "name": "forms", "kind": "files", "collection": "misc"}
        form["enabled"] = "on"
        bad = http.post("/admin/ui/sources", data={**form, "options": "root: [unclosed"})
        assert bad.status_code == 400 and "not valid YAML" in bad.text
        unknown = http.post("/admin/ui/sources", data={**form, "options": "rooot: /x"})
        assert unknown.status_code == 400 and "rooot" in unknown.text
        assert admin.get("/admin/sources/forms").status_code == 404

        added = http.post("/admin/ui/sources", data={**form, "options": f"root: {folder}"})
        assert added.status_code == 303 and added.headers["location"].startswith(
            "/admin/ui/sources/forms"
        )
        assert admin.get("/admin/sources/forms").json()["config"]["collection"] == "misc"

        edited = http.post(
            "/admin/ui/sources/forms",
            data={**form, "description": "edited here", "options": f"root: {folder}"},
        )
        assert edited.status_code == 303
        assert admin.get("/admin/sources/forms").json()["description"] == "edited here"

        off = http.post("/admin/ui/sources/forms/enabled", data={"csrf": token, "enabled": "false"})
        assert off.status_code == 303
        assert admin.get("/admin/sources/forms").json()["enabled"] is False
        # Edited and disabled through the same use cases: their audit rows name the console's
        # admin and the change.
        rows = admin.get("/admin/audit", params={"principal": "user:root", "limit": 50}).json()
        assert [r["target"] for r in rows if r["method"] == "sources.add"][-3:] == ["forms"] * 3
        admin.delete("/admin/sources/forms").raise_for_status()


def test_audit_filters(stack: Stack) -> None:
    with _signed_in(stack) as (http, _):
        nothing = http.get("/admin/ui/search", params={"as": "user:zed", "q": "deploy"})
        # Nothing for zed; the admin's top hit is explained, with the rule another reads it by.
        assert 'id="nothing"' in nothing.text and "no allow rule matches" in nothing.text
        assert "Readable by" in nothing.text
        assert "allow group:eng -&gt; collection:handbook" in nothing.text
        page = http.get("/admin/ui/audit", params={"principal": "user:zed"})
        methods = re.findall(r"<td>(admin\.search_as|[a-z_./]+)</td><td>", page.text)
        assert methods and set(methods) == {"admin.search_as"}
        future = http.get("/admin/ui/audit", params={"since": "2999-01-01T00:00"})
        assert "No rows match." in future.text
        bad = http.get("/admin/ui/audit", params={"since": "yesterday"})
        assert bad.status_code == 400
        exported = http.get("/admin/ui/audit.csv", params={"principal": "user:zed"})
        assert exported.headers["content-type"].startswith("text/csv")
        lines = exported.text.strip().splitlines()
        assert lines[0].startswith("id,at,principals") and len(lines) >= 2
        assert all("user:zed" in line for line in lines[1:])


def test_jobs_fragment_lists_runs_with_progress(stack: Stack) -> None:
    with _signed_in(stack) as (http, _):
        table = http.get("/admin/ui/jobs/table")
        assert table.status_code == 200
        assert "<progress" in table.text and 'data-status="succeeded"' in table.text
        assert "3 / 3" in table.text


def test_an_admin_api_key_signs_in_until_it_is_revoked(stack: Stack) -> None:
    with stack.admin() as admin:
        admin.post("/admin/policies/roles", json={"member": "svc:ops", "role": "role:admin"})
        created = admin.post("/admin/keys", json={"name": "ops"})
        created.raise_for_status()
        key, key_id = created.json()["secret"], created.json()["key"]["id"]
        with _client(stack) as http:
            assert _sign_in(http, key).status_code == 303
            assert http.get("/admin/ui/policies").status_code == 200
            # Every request re-checks the stored credential: revocation ends the session.
            admin.delete(f"/admin/keys/{key_id}").raise_for_status()
            after = http.get("/admin/ui/policies")
            assert after.status_code == 303
            assert after.headers["location"].startswith("/admin/ui/signin")


def test_policy_import_and_remove_go_through_the_preview(stack: Stack) -> None:
    imported = "rules:\n  - subject: group:interns\n    object: collection:handbook\n"
    with _signed_in(stack) as (http, token):
        broken = http.post(
            "/admin/ui/policies/import",
            data={"csrf": token, "step": "preview", "policy": "rules: [{subject: x}]"},
        )
        assert broken.status_code == 400
        preview = http.post(
            "/admin/ui/policies/import",
            data={"csrf": token, "step": "preview", "policy": imported},
        )
        assert preview.status_code == 200 and "Preview the change" in preview.text
        assert "group:interns" in preview.text
        # The preview stored nothing.
        assert "group:interns" not in _rules(stack)
        applied = http.post(
            "/admin/ui/policies/import",
            data={"csrf": token, "step": "apply", "policy": imported},
        )
        assert applied.status_code == 303
        assert "group:interns" in _rules(stack)

        with stack.admin() as admin:
            items = admin.get("/admin/policies").json()["items"]
        rule_id = next(i["id"] for i in items if i.get("subject") == "group:interns")
        removal = {"csrf": token, "id": str(rule_id)}
        preview = http.post("/admin/ui/policies/remove", data={**removal, "step": "preview"})
        assert preview.status_code == 200 and f"Removing items {rule_id}." in preview.text
        assert "group:interns" in _rules(stack)
        done = http.post("/admin/ui/policies/remove", data={**removal, "step": "apply"})
        assert done.status_code == 303
        assert "group:interns" not in _rules(stack)


def test_retry_queues_a_new_run_of_the_source(stack: Stack) -> None:
    with stack.admin() as admin:
        eventually(lambda: synced(admin, "handbook"), "the handbook's first sync")
        before = admin.get("/admin/jobs", params={"source": "handbook"}).json()
        with _signed_in(stack) as (http, token):
            answer = http.post(f"/admin/ui/jobs/{before[0]['id']}/retry", data={"csrf": token})
            assert answer.status_code == 303
            new_id = int(answer.headers["location"].split("/jobs/")[1].split("?")[0])
        assert new_id > before[0]["id"]
        after = admin.get(f"/admin/jobs/{new_id}").json()
        assert after["source"] == "handbook"
        eventually(
            lambda: admin.get(f"/admin/jobs/{new_id}").json()["status"] == "succeeded",
            "the retried run",
        )
