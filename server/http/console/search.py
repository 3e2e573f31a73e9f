"""The "Search as" page: a query run as a chosen principal set, each hit with the reason
it is allowed; when nothing comes back, the rules refusing the admin search's top hits."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.errors import InvalidRequest, NotFound, PolicyError
from server.http.console.render import page
from server.http.console.session import PREFIX, ConsoleUser
from server.usecases.search_as import SearchAs, search_as

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/search")
async def search_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    as_ = request.query_params.get("as", "").strip()
    q = request.query_params.get("q", "").strip()
    result: SearchAs | None = None
    error = None
    if as_ and q:
        try:
            result = await search_as(request.app.state.runtime, console.admin, as_, q)
        except (InvalidRequest, NotFound, PolicyError) as exc:
            error = exc.message
    return page(
        request,
        "search.html",
        console,
        status_code=400 if error else 200,
        active="search",
        as_=as_,
        q=q,
        result=result,
        error=error,
    )


__all__ = ["router"]
