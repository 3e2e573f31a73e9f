"""The Policies page: rules with search, add and remove with lint feedback and the diff
preview before applying, import and export, explain, and who can read a document.

A change is two POSTs of the same form: ``step=preview`` shows the lint issues and, per
principal, the documents gained and lost (:mod:`server.usecases.policy_preview`); the
preview page repeats the fields with ``step=apply``, which calls the change use case.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.datastructures import FormData

from core.errors import InvalidRequest, NotFound, PolicyError
from policies.admin import parse_principals
from policies.rules import (
    AccessRule,
    PolicyItem,
    RoleLink,
    parse_policy_yaml,
    rule_from_mapping,
)
from server.http.console.render import page, redirect
from server.http.console.session import PREFIX, Console, ConsoleUser, checked_form
from server.usecases import policy_admin
from server.usecases.policy_preview import preview

router = APIRouter(prefix=PREFIX, include_in_schema=False)

USER_ERRORS = (InvalidRequest, NotFound, PolicyError)


def _rt(request: Request) -> Any:
    return request.app.state.runtime


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def describe(item: PolicyItem) -> str:
    return item.describe()


def matches(item: PolicyItem, query: str) -> bool:
    return query.lower() in describe(item).lower() or (
        isinstance(item, AccessRule) and query.lower() in item.comment.lower()
    )


def item_of(form: FormData) -> PolicyItem:
    """The rule or role link the add form describes (parsed by the policy file's parser)."""
    if _text(form, "kind") == "role":
        member, role = _text(form, "member"), _text(form, "role")
        if not member or not role:
            raise PolicyError("a role link needs a member and a role")
        return RoleLink(member, role)
    raw: dict[str, Any] = {
        "subject": _text(form, "subject"),
        "object": _text(form, "object"),
        "effect": _text(form, "effect") or "allow",
        "when": _text(form, "when"),
        "comment": _text(form, "comment"),
    }
    if level := _text(form, "max_level"):
        try:
            raw["max_level"] = int(level)
        except ValueError:
            raise PolicyError("max_level must be a whole number") from None
    return rule_from_mapping(raw)


async def _listing(request: Request, console: Console, **extra: Any) -> HTMLResponse:
    version, items = await policy_admin.list_items(_rt(request), console.admin)
    query = request.query_params.get("q", "").strip()
    shown = [s for s in items if matches(s.item, query)] if query else items
    status = extra.pop("status_code", 200)
    return page(
        request,
        "policies.html",
        console,
        status_code=status,
        active="policies",
        version=version,
        items=shown,
        total=len(items),
        q=query,
        describe=describe,
        **extra,
    )


@router.get("/policies")
async def policies_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    return await _listing(request, console)


async def _change(
    request: Request,
    console: Console,
    form: FormData,
    *,
    action: str,
    add: list[PolicyItem] | None = None,
    remove: list[int] | None = None,
    imported: Any = None,
    replace: bool = False,
) -> Response:
    rt, admin = _rt(request), console.admin
    if _text(form, "step") == "apply":
        if add:
            change = await policy_admin.add_items(rt, admin, add)
        elif remove:
            change = await policy_admin.remove_items(rt, admin, remove)
        else:
            change = await policy_admin.import_policy(rt, admin, imported, replace=replace)
        return redirect(
            "/policies",
            notice=f"policy version {change.version}: {change.added} added, "
            f"{change.removed} removed",
        )
    if imported is not None and not replace:
        result = await preview(rt, admin, add=[*imported.items()])
    elif imported is not None:
        result = await preview(rt, admin, replace_with=imported)
    else:
        result = await preview(rt, admin, add=add or [], remove_ids=remove or [])
    fields = {k: v for k, v in form.multi_items() if k not in ("csrf", "step")}
    return page(
        request,
        "policy_preview.html",
        console,
        active="policies",
        action=action,
        result=result,
        fields=fields,
        describe=describe,
        changes=[describe(i) for i in add or []],
        removing=remove or [],
    )


@router.post("/policies/rules", response_model=None)
async def add_item(request: Request, console: ConsoleUser) -> Response:
    form = await checked_form(request, console)
    try:
        item = item_of(form)
        return await _change(request, console, form, action="rules", add=[item])
    except USER_ERRORS as exc:
        return await _listing(request, console, error=exc.message, status_code=400)


@router.post("/policies/remove", response_model=None)
async def remove_items(request: Request, console: ConsoleUser) -> Response:
    form = await checked_form(request, console)
    try:
        ids = [int(v) for v in form.getlist("id") if isinstance(v, str) and v.isdigit()]
        if not ids:
            raise InvalidRequest("tick the rules to remove")
        return await _change(request, console, form, action="remove", remove=ids)
    except USER_ERRORS as exc:
        return await _listing(request, console, error=exc.message, status_code=400)


@router.post("/policies/import", response_model=None)
async def import_policy(request: Request, console: ConsoleUser) -> Response:
    form = await checked_form(request, console)
    try:
        policy = parse_policy_yaml(_text(form, "policy"), "imported policy")
        replace = _text(form, "replace") == "on"
        return await _change(
            request, console, form, action="import", imported=policy, replace=replace
        )
    except USER_ERRORS as exc:
        return await _listing(request, console, error=exc.message, status_code=400)


@router.get("/policies/export")
async def export_policy(request: Request, console: ConsoleUser) -> PlainTextResponse:
    text = await policy_admin.export_policy(_rt(request), console.admin)
    return PlainTextResponse(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="policy.yaml"'},
    )


@router.get("/policies/explain")
async def explain_page(request: Request, console: ConsoleUser) -> HTMLResponse:
    as_ = request.query_params.get("as", "").strip()
    doc = request.query_params.get("doc", "").strip()
    why, readers, error = None, None, None
    try:
        if doc and as_:
            why = await policy_admin.explain(
                _rt(request), console.admin, parse_principals(as_), doc
            )
        elif doc:
            readers = await policy_admin.who_can(_rt(request), console.admin, doc)
    except USER_ERRORS as exc:
        error = exc.message
    return page(
        request,
        "explain.html",
        console,
        status_code=400 if error else 200,
        active="policies",
        as_=as_,
        doc=doc,
        why=why,
        readers=readers,
        error=error,
    )


__all__ = ["item_of", "router"]
