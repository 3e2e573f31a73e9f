"""`make screenshots`: a PNG of each console page under docs/screenshots/.

Starts its own embedded PostgreSQL, `kb serve` and `kb worker` in a temporary folder,
loads two small sources, runs a few searches and one refused sign-in so the pages have
something to show, then drives Debian's Chromium through every page.

    python -m tests.console.screenshots [OUTPUT_DIR]
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from server.db.embedded import EmbeddedPostgres
from tests.console.browser import chromium, eventually, new_page, sign_in, synced
from tests.console.harness import Stack, console_stack, write_docs

RUNBOOKS = {
    "pager.md": "# Pager duty\n\nEscalate to the incident commander after ten minutes.\n",
    "dns.md": "# DNS changes\n\nEvery DNS change is peer reviewed and announced.\n",
    "empty.md": "",
}
NOTE = "Meeting notes about capacity planning, budgets and the quarterly roadmap review."
QUERIES = ["database backups", "deployment roll back", "who answers pages", "dns review"]


def shoot(page: Page, out: Path, name: str, *, full_page: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
    print(f"  {out / f'{name}.png'}")


def _running_run(stack: Stack, http: httpx.Client, folder: Path) -> None:
    """Start a sync of a few hundred notes and pause the worker mid-run (SIGSTOP), so the
    Jobs page shows a run in progress; the caller resumes it."""
    write_docs(folder, {f"note-{i:03d}.md": f"# Note {i}\n\n{NOTE * 3}\n" for i in range(300)})
    definition = {"name": "archive", "kind": "files", "root": str(folder), "collection": "archive"}
    http.post("/admin/sources", json=definition).raise_for_status()
    # A first sync, so the next one has a total to estimate against.
    http.post("/admin/sources/archive/sync").raise_for_status()
    eventually(lambda: synced(http, "archive"), "the archive's first sync")
    for i in range(0, 300, 2):
        (folder / f"note-{i:03d}.md").write_text(f"# Note {i} (revised)\n\n{NOTE}\n")
    run_id = http.post("/admin/sources/archive/sync").json()["run_id"]

    def midway() -> bool:
        run = http.get(f"/admin/jobs/{run_id}").json()
        return bool(run["status"] == "running" and run["docs_seen"] >= 60)

    eventually(midway, "the archive's second sync to be under way")
    assert stack.worker is not None
    os.kill(stack.worker.pid, signal.SIGSTOP)


def _live(http: httpx.Client) -> bool:
    return any(r["status"] in ("queued", "running") for r in http.get("/admin/jobs").json())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kb-shots-") as tmp:
        home = Path(tmp)
        pg = EmbeddedPostgres(home / "pg-home", "kbshots")
        uri = pg.start()
        try:
            with console_stack(uri, home / "stack") as stack, stack.admin() as http:
                eventually(lambda: synced(http, "handbook"), "the handbook's first sync")
                write_docs(home / "stack" / "runbooks", RUNBOOKS)
                definition = {
                    "name": "runbooks",
                    "kind": "files",
                    "root": str(home / "stack" / "runbooks"),
                    "collection": "handbook",
                    "description": "On-call runbooks",
                }
                http.post("/admin/sources", json=definition).raise_for_status()
                http.post("/admin/sources/runbooks/sync").raise_for_status()
                # A role chain for the explain page: carol is on call, on-call reads runbooks.
                oncall = {
                    "roles": {"user:carol": "role:oncall"},
                    "rules": [{"subject": "role:oncall", "object": "source:runbooks"}],
                }
                http.post("/admin/policies/import", json={"policy": oncall}).raise_for_status()
                eventually(lambda: synced(http, "runbooks"), "the runbooks' sync")
                with chromium() as browser:
                    page = new_page(browser)
                    page.goto(f"{stack.url}/admin/ui/signin")
                    shoot(page, out, "signin")
                    # One refused attempt, for the audit page.
                    sign_in(page, stack.url, stack.alice_token)
                    expect(page.get_by_role("alert")).to_be_visible()
                    sign_in(page, stack.url, stack.root_token)
                    for q in QUERIES:
                        page.goto(f"{stack.url}/admin/ui/search?as=user:alice,group:eng&q={q}")
                        page.goto(f"{stack.url}/admin/ui/search?as=user:bob&q={q}")
                    page.goto(f"{stack.url}/admin/ui/")
                    shoot(page, out, "overview")
                    page.goto(f"{stack.url}/admin/ui/sources")
                    shoot(page, out, "sources")
                    page.goto(f"{stack.url}/admin/ui/sources/runbooks")
                    shoot(page, out, "source")
                    _running_run(stack, http, home / "stack" / "archive")
                    page.goto(f"{stack.url}/admin/ui/jobs")
                    shoot(page, out, "jobs")
                    assert stack.worker is not None
                    os.kill(stack.worker.pid, signal.SIGCONT)
                    eventually(lambda: not _live(http), "the archive's second sync")
                    failed = http.get("/admin/jobs", params={"source": "runbooks"}).json()
                    page.goto(f"{stack.url}/admin/ui/jobs/{failed[-1]['id']}")
                    shoot(page, out, "job")
                    page.goto(
                        f"{stack.url}/admin/ui/search?as=user:alice,group:eng&q=database backups"
                    )
                    shoot(page, out, "search-as")
                    page.goto(f"{stack.url}/admin/ui/search?as=user:bob&q=database backups")
                    shoot(page, out, "search-as-nothing")
                    page.goto(f"{stack.url}/admin/ui/policies")
                    shoot(page, out, "policies")
                    form = page.locator("#rule-form")
                    form.get_by_label("Subject").fill("group:contractors")
                    form.get_by_label("Object").fill("collection:handbook")
                    form.get_by_label("Comment").fill("contractors read the handbook")
                    form.get_by_role("button", name="Preview").click()
                    shoot(page, out, "policy-preview")
                    page.goto(f"{stack.url}/admin/ui/search?as=user:carol&q=pager escalation")
                    runbook = page.locator("#results .hit .meta code").first.inner_text()
                    page.goto(f"{stack.url}/admin/ui/policies/explain?as=user:carol&doc={runbook}")
                    shoot(page, out, "explain")
                    page.goto(f"{stack.url}/admin/ui/policies/explain?doc={runbook}")
                    shoot(page, out, "who-can-read")
                    page.goto(f"{stack.url}/admin/ui/audit")
                    shoot(page, out, "audit", full_page=False)
        finally:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
