"""Rendering console pages: one Jinja2 environment over the package's templates."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.http.console.charts import bar_chart
from server.http.console.session import PREFIX, Console

TEMPLATES = Path(__file__).with_name("templates")

NAV = (
    ("overview", "Overview", ""),
    ("sources", "Sources", "/sources"),
    ("jobs", "Jobs", "/jobs"),
    ("policies", "Policies", "/policies"),
    ("search", "Search as", "/search"),
    ("audit", "Audit", "/audit"),
)


def _when(value: object) -> str:
    """An ISO timestamp or datetime as ``2026-11-30 09:12:03`` (UTC)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return parsed.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "—" if value is None else str(value)


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.globals["bar_chart"] = bar_chart
    env.globals["nav"] = NAV
    env.globals["prefix"] = PREFIX
    return env


def page(
    request: Request,
    template: str,
    console: Console | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            console=console,
            csrf=console.session.csrf if console else "",
            notice=request.query_params.get("notice"),
            problem=request.query_params.get("problem"),
            **context,
        )
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            # Nothing on these pages comes from elsewhere; frames are refused (clickjacking).
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
            ),
            "X-Frame-Options": "DENY",
            # Not no-referrer: Chromium then sends "Origin: null" on form POSTs, which the
            # Origin check refuses.
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def redirect(
    path: str, *, notice: str | None = None, problem: str | None = None
) -> RedirectResponse:
    """303 to a console page (POST-redirect-GET), with a message for the next page."""
    query = {k: v for k, v in (("notice", notice), ("problem", problem)) if v}
    target = PREFIX + path + ("?" + urlencode(query) if query else "")
    return RedirectResponse(target, status_code=303)


__all__ = ["NAV", "environment", "page", "redirect"]
