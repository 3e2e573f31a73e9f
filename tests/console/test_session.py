"""Console session mechanics without a server: expiry, cookie flags over TLS."""

from __future__ import annotations

import time

import pytest
from starlette.requests import Request
from starlette.responses import Response

from server.http.console.session import COOKIE, IDLE_S, SessionStore, set_cookie


def _request(scheme: str) -> Request:
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": ("kb.example", 443 if scheme == "https" else 80),
        "method": "GET",
        "path": "/admin/ui/",
        "headers": [(b"host", b"kb.example")],
    }
    return Request(scope)


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_cookie_is_secure_over_tls(scheme: str, secure: bool) -> None:
    response = Response()
    set_cookie(_request(scheme), response, COOKIE, "sid", max_age=60)
    header = response.headers["set-cookie"]
    assert ("Secure" in header) is secure
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/admin/ui" in header


def test_sessions_expire_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore()
    sid, session = store.create("Bearer x", "user:root")
    assert store.get(sid) is session
    assert store.get("another") is None and store.get(None) is None
    later = time.monotonic() + IDLE_S + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert store.get(sid) is None
    # Gone for good, not only hidden.
    monkeypatch.undo()
    assert store.get(sid) is None


def test_each_session_has_its_own_csrf_token() -> None:
    store = SessionStore()
    _, a = store.create("Bearer x", "user:root")
    _, b = store.create("Bearer x", "user:root")
    assert a.csrf != b.csrf and len(a.csrf) >= 32
