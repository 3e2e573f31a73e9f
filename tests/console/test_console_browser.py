"""The console in a real browser: Playwright driving Debian's Chromium against a real
`kb serve` and `kb worker`.

One module, one server, the steps in order: sign in through a `kb token mint --link`
link; add a files source and watch its sync finish; search as an engineer, add a deny
rule through the preview, and see the same search come back empty with the deny rule
named; explain; filter the audit log and export it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.browser import chromium, new_page
from tests.console.harness import Stack, write_docs
from tests.support.server_process import KB, REPO

pytestmark = pytest.mark.slow

ENGINEER = "user:alice, group:eng"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    page = new_page(browser)
    yield page
    page.context.close()


def test_sign_in_with_a_dev_link(page: Page, stack: Stack) -> None:
    # A refused attempt first: the engineer's token is not an administrator's.
    page.goto(f"{stack.url}/admin/ui/signin")
    page.get_by_label("Token or API key").fill(stack.alice_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("admin role is required")

    done = subprocess.run(
        [str(KB), "token", "mint", "--sub", "root", "--admin", "--link"],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    page.goto(done.stdout.strip().splitlines()[-1])
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert "#token" not in page.url
    expect(page.get_by_role("navigation")).to_contain_text("Search as")
    expect(page.locator("header")).to_contain_text("user:root")


def test_add_a_source_and_watch_its_sync(page: Page, stack: Stack) -> None:
    folder = stack.home / "runbooks"
    write_docs(
        folder,
        {
            "pager.md": "# Pager duty\n\nEscalate to the incident commander after ten minutes.\n",
            "dns.md": "# DNS changes\n\nEvery DNS change is peer reviewed and announced.\n",
        },
    )
    page.get_by_role("link", name="Sources").click()
    expect(page.get_by_role("heading", name="Sources")).to_be_visible()
    # A folder that does not exist is refused with the source's reason, in the form.
    page.get_by_label("Name").fill("runbooks")
    page.get_by_label("Options (YAML)").fill(f"root: {folder}-missing\n")
    page.get_by_role("button", name="Add source").click()
    expect(page.locator("#form-error")).to_be_visible()

    page.get_by_label("Name").fill("runbooks")
    page.get_by_label("Collection").fill("handbook")
    page.get_by_label("Options (YAML)").fill(f"root: {folder}\n")
    page.get_by_role("button", name="Add source").click()
    expect(page.get_by_role("status")).to_contain_text("source runbooks added")
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_role("heading", name=re.compile(r"Run #\d+ of runbooks"))).to_be_visible()
    # The run page reloads itself while the run is live.
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=300_000)
    page.get_by_role("link", name="Jobs").click()
    row = page.locator("#runs tr[data-status='succeeded']").filter(has_text="runbooks")
    expect(row.first).to_contain_text("2 / 2")
    page.get_by_role("link", name="Sources").click()
    expect(page.locator("tr[data-source='runbooks']")).to_contain_text("enabled")


def test_jobs_page_follows_a_run_live(page: Page, stack: Stack) -> None:
    """The worker is paused so the run is certainly queued when the page loads; the page
    then follows it to the end by polling, without being reloaded."""
    assert stack.worker is not None
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/jobs/table" in r.url else None)
    os.kill(stack.worker.pid, signal.SIGSTOP)
    try:
        page.get_by_role("link", name="Sources").click()
        page.get_by_role("button", name="Sync runbooks now").click()
        heading = page.get_by_role("heading", name=re.compile(r"Run #\d+ of runbooks"))
        run_id = re.search(r"#(\d+)", heading.inner_text())
        assert run_id is not None
        page.get_by_role("link", name="Jobs").click()
        row = page.locator(f"#runs tr[data-run='{run_id[1]}']")
        expect(row).to_have_attribute("data-status", "queued")
        # Nothing read yet, out of an estimated total: the source's two documents.
        expect(row).to_contain_text("0 / 2")
        loaded = page.url
    finally:
        os.kill(stack.worker.pid, signal.SIGCONT)
    expect(page.locator(f"#runs tr[data-run='{run_id[1]}']")).to_have_attribute(
        "data-status", "succeeded", timeout=300_000
    )
    assert page.url == loaded and polls


def _search_as(page: Page, principals: str, query: str) -> None:
    page.get_by_role("link", name="Search as").click()
    page.get_by_label("Principals").fill(principals)
    page.get_by_label("Query").fill(query)
    page.get_by_role("button", name="Search").click()


def test_a_deny_rule_changes_search_as(page: Page, stack: Stack) -> None:
    _search_as(page, ENGINEER, "how are database backups restored")
    first = page.locator("#results .hit").first
    expect(first).to_contain_text("Database backups")
    expect(first).to_contain_text("allowed")
    expect(first).to_contain_text("group:eng")

    page.get_by_role("link", name="Policies").click()
    form = page.locator("#rule-form")
    form.get_by_label("Subject").fill("group:eng")
    form.get_by_label("Effect").select_option("deny")
    form.get_by_label("Object").fill("collection:handbook")
    form.get_by_label("Comment").fill("handbook frozen for the audit")
    form.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview the change")).to_be_visible()
    expect(page.locator("#diff")).to_contain_text("group:eng")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("status")).to_contain_text("1 added")
    page.get_by_label("Search rules").fill("frozen")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#rules tbody tr")).to_have_count(1)

    _search_as(page, ENGINEER, "how are database backups restored")
    expect(page.locator("#nothing")).to_be_visible()
    missing = page.locator("#missing .hit").first
    expect(missing).to_contain_text("refused")
    expect(missing).to_contain_text("deny group:eng -> collection:handbook")


def test_explain_and_who_can_read(page: Page, stack: Stack) -> None:
    with stack.admin() as http:
        docs = http.get("/admin/policies/who-can", params={"doc": "x"})
    assert docs.status_code == 404
    _search_as(page, "user:root", "database backups nightly")
    doc_id = page.locator("#results .hit .meta code").first.inner_text()
    page.goto(f"{stack.url}/admin/ui/policies")
    explain = page.locator("#explain-form")
    explain.get_by_label("Principals").fill(ENGINEER)
    explain.get_by_label("Document id").fill(doc_id)
    explain.get_by_role("button", name="Explain").click()
    why = page.locator("#explanation")
    expect(why).to_contain_text("refused")
    expect(why).to_contain_text("deny group:eng -> collection:handbook")
    expect(why).to_contain_text("via group:eng")
    # Who can read it: nobody but administrators now.
    page.locator("#explain-form").get_by_label("Principals").fill("")
    page.locator("#explain-form").get_by_role("button", name="Explain").click()
    expect(page.locator("#readers")).to_be_visible()
    expect(page.locator("#readers")).not_to_contain_text("group:eng")


def test_audit_filter_and_export(page: Page, stack: Stack) -> None:
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Method or tool").fill("admin.search_as")
    page.get_by_label("Principal").fill("group:eng")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_contain_text("admin.search_as")
    count = rows.count()
    assert count >= 2
    for i in range(count):
        expect(rows.nth(i)).to_contain_text("group:eng")

    page.get_by_label("Method or tool").fill("")
    page.get_by_label("Principal").fill("")
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit tbody tr").first).to_contain_text("admin.authorize")
    assert page.locator("#audit tbody tr[data-outcome='ok']").count() == 0

    with page.expect_download() as download:
        page.get_by_role("link", name="Export these filters as CSV").click()
    text = download.value.path().read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert exported and {r["outcome"] for r in exported} == {"denied"}
    assert any(r["method"] == "admin.authorize" for r in exported)
