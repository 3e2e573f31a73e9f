"""Playwright driving Debian's Chromium (never a downloaded browser), and console steps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000
# The machine is loaded: expectations wait as long as actions do.
expect.set_options(timeout=TIMEOUT_MS)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/admin/ui/signin")
    page.get_by_label("Token or API key").fill(token)
    page.get_by_role("button", name="Sign in").click()


def eventually(check: Callable[[], bool], what: str, timeout: float = 300) -> None:
    """Poll ``check`` until it holds (the machine is loaded: generous, no timing asserted)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def synced(http: httpx.Client, source: str) -> bool:
    runs = http.get("/admin/jobs", params={"source": source}).json()
    return any(r["status"] == "succeeded" for r in runs)


__all__ = ["ARGS", "CHROMIUM", "chromium", "eventually", "new_page", "sign_in", "synced"]
