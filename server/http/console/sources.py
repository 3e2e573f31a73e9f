"""The Sources page: list, add (validated by the kb.yaml models), edit, enable/disable,
sync now, last runs. Each action is one call of :mod:`server.usecases.sources`."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from connectors.registry import known_kinds
from core.errors import ConfigError, ConnectorError, InvalidRequest, KBError, NotFound
from server.http.console.render import page, redirect
from server.http.console.session import PREFIX, Console, ConsoleUser, checked_form
from server.usecases import sources as usecases

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# What an operator can fix by editing the form; anything else is a server problem.
USER_ERRORS = (ConfigError, ConnectorError, InvalidRequest, NotFound)
COMMON = ("name", "kind", "description", "collection", "level", "schedule", "acl")


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def definition_of(form: FormData) -> dict[str, Any]:
    """The form as a source definition, the shape of one ``sources:`` entry in kb.yaml.
    Only reshaping: the kind's pydantic model validates it inside the use case."""
    options_text = _text(form, "options")
    try:
        options = yaml.safe_load(options_text) if options_text else {}
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"the options are not valid YAML: {exc}") from None
    if not isinstance(options, dict):
        raise InvalidRequest("the options must be YAML key: value lines")
    definition: dict[str, Any] = {k: v for k, v in options.items() if k not in COMMON}
    definition["name"] = _text(form, "name")
    definition["kind"] = _text(form, "kind")
    for key in ("description", "collection", "schedule"):
        if value := _text(form, key):
            definition[key] = value
    if level := _text(form, "level"):
        definition["level"] = level
    if "acl" in form:
        definition["acl"] = [p.strip() for p in _text(form, "acl").split(",") if p.strip()]
    definition["enabled"] = form.get("enabled") == "on"
    return definition


def _form_values(config: dict[str, Any] | None) -> dict[str, Any]:
    """A stored definition split back into the form's fields."""
    if not config:
        return {"enabled": True, "collection": "default", "level": 0, "kind": "files"}
    options = {k: v for k, v in config.items() if k not in (*COMMON, "enabled")}
    return {
        **{k: config.get(k) for k in COMMON},
        "acl": ", ".join(config.get("acl") or []),
        "enabled": config.get("enabled", True),
        "options": yaml.safe_dump(options, sort_keys=False) if options else "",
    }


def _rt(request: Request) -> Any:
    return request.app.state.runtime


@router.get("/sources")
async def sources_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    listing = await usecases.list_sources(_rt(request), console.admin)
    return page(
        request,
        "sources.html",
        console,
        active="sources",
        sources=listing,
        kinds=known_kinds(),
        values=_form_values(None),
        error=None,
    )


async def _save(
    request: Request, console: Console, *, replace: bool, name: str | None = None
) -> Response:
    form = await checked_form(request, console)
    try:
        definition = definition_of(form)
        if name is not None:
            definition["name"] = name
        saved = await usecases.add_source(_rt(request), console.admin, definition, replace=replace)
    except USER_ERRORS as exc:
        values: dict[str, Any] = {k: _text(form, k) for k in (*COMMON, "options")}
        values["enabled"] = form.get("enabled") == "on"
        if name is not None:
            source = await usecases.get_source(_rt(request), console.admin, name)
            return page(
                request,
                "source.html",
                console,
                status_code=400,
                active="sources",
                source=source,
                values=values,
                kinds=known_kinds(),
                error=exc.message,
            )
        listing = await usecases.list_sources(_rt(request), console.admin)
        return page(
            request,
            "sources.html",
            console,
            status_code=400,
            active="sources",
            sources=listing,
            kinds=known_kinds(),
            values=values,
            error=exc.message,
        )
    verb = "saved" if replace else "added"
    return redirect(f"/sources/{saved['name']}", notice=f"source {saved['name']} {verb}")


@router.post("/sources", response_model=None)
async def add_source(request: Request, console: ConsoleUser) -> Response:
    return await _save(request, console, replace=False)


@router.get("/sources/{name}")
async def source_page(request: Request, console: ConsoleUser, name: str) -> HTMLResponse:
    source = await usecases.get_source(_rt(request), console.admin, name)
    return page(
        request,
        "source.html",
        console,
        active="sources",
        source=source,
        values=_form_values(source["config"]),
        kinds=known_kinds(),
        error=None,
    )


@router.post("/sources/{name}", response_model=None)
async def edit_source(request: Request, console: ConsoleUser, name: str) -> Response:
    return await _save(request, console, replace=True, name=name)


@router.post("/sources/{name}/sync", response_model=None)
async def sync_source(request: Request, console: ConsoleUser, name: str) -> Response:
    await checked_form(request, console)
    try:
        run_id, _ = await usecases.sync_source(_rt(request), console.admin, name)
    except KBError as exc:
        return redirect(f"/sources/{name}", problem=exc.message)
    return redirect(f"/jobs/{run_id}", notice=f"sync of {name} queued as run {run_id}")


@router.post("/sources/{name}/enabled", response_model=None)
async def set_enabled(request: Request, console: ConsoleUser, name: str) -> Response:
    form = await checked_form(request, console)
    enabled = form.get("enabled") == "true"
    try:
        await usecases.set_enabled(_rt(request), console.admin, name, enabled)
    except USER_ERRORS as exc:
        return redirect("/sources", problem=exc.message)
    return redirect("/sources", notice=f"{name} {'enabled' if enabled else 'disabled'}")


__all__ = ["definition_of", "router"]
