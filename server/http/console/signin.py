"""Signing in and out of the console with an admin token or API key.

The sign-in form is protected against login CSRF by a double-submitted random value (a
cookie and a hidden field that must match). A development sign-in link
(``kb token mint --admin --link``) carries the token in the URL fragment, which browsers
never send to a server or put in its logs; the page's script moves it into the form and
submits it, then erases it from the address bar.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.errors import AuthError
from server.http.console.render import page
from server.http.console.session import (
    ABSOLUTE_S,
    COOKIE,
    PRE_COOKIE,
    PREFIX,
    ConsoleUser,
    checked_form,
    clear_cookie,
    set_cookie,
    store_of,
)
from server.http.deps import admin_caller

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _safe_next(value: object) -> str:
    """Only a console path: an open redirect would make the sign-in page a phishing aid."""
    if isinstance(value, str) and value.startswith(PREFIX) and "//" not in value:
        return value
    return PREFIX


def _form(request: Request, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    value = secrets.token_urlsafe(24)
    response = page(
        request,
        "signin.html",
        None,
        status_code=status_code,
        error=error or request.query_params.get("why"),
        pre=value,
        next=_safe_next(request.query_params.get("next")),
    )
    set_cookie(request, response, PRE_COOKIE, value, max_age=1800)
    return response


@router.get("/signin")
async def signin_form(request: Request) -> HTMLResponse:
    return _form(request)


@router.post("/signin", response_model=None)
async def signin(request: Request) -> Response:
    form = await request.form()
    pre, cookie = form.get("pre"), request.cookies.get(PRE_COOKIE)
    if not (isinstance(pre, str) and cookie and secrets.compare_digest(pre, cookie)):
        return _form(request, error="the sign-in form expired; try again", status_code=403)
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    if not token:
        return _form(request, error="paste an admin token or API key", status_code=400)
    authorization = f"Bearer {token}"
    try:
        request.state.authenticated = await request.app.state.runtime.auth.authenticate(
            authorization, transport="rest"
        )
        admin = await admin_caller(request)
    except AuthError as exc:
        return _form(request, error=exc.message, status_code=401)
    except HTTPException as exc:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _form(request, error=detail, status_code=exc.status_code)
    sid, _ = store_of(request).create(authorization, admin.subject)
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    set_cookie(request, response, COOKIE, sid, max_age=ABSOLUTE_S)
    clear_cookie(request, response, PRE_COOKIE)
    return response


@router.post("/signout")
async def signout(request: Request, console: ConsoleUser) -> RedirectResponse:
    await checked_form(request, console)
    store_of(request).drop(console.sid)
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    clear_cookie(request, response, COOKIE)
    return response


__all__ = ["router"]
