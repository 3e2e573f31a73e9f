"""``/admin/policies``: the access policy over REST (admin role required).

The same operations as ``kb policy``, through the same service
(:class:`policies.admin.PolicyAdmin`). Policies travel as JSON in the policy-file
structure (``roles``, ``collections``, ``rules``); ``/export`` returns the YAML file.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequest, KBError, NotFound
from core.identity import Caller
from policies.admin import PolicyAdmin, parse_principals
from policies.explain import Explanation
from policies.lint import lint
from policies.rules import (
    AccessRule,
    CollectionLink,
    PolicyItem,
    PolicySet,
    RoleLink,
    parse_policy_data,
    rule_from_mapping,
    rule_to_mapping,
)
from policies.store import Change, StoredItem
from server.http.deps import require_admin
from server.http.params import RowId
from server.runtime import Runtime

router = APIRouter(prefix="/admin/policies", tags=["admin"])

Admin = Annotated[Caller, Depends(require_admin)]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(description="Principal or role: user:alice, group:hr, role:staff.")
    object: str = Field(
        description="collection:NAME, path:/prefix/, source:NAME, doc:ID, acl:source or *."
    )
    effect: Literal["allow", "deny"] = "allow"
    max_level: int | None = Field(default=None, description="Clearance (allow rules only).")
    when: str = Field(
        default="", description='Conditions, e.g. metadata.team == "x" && level <= 2.'
    )
    comment: str = ""


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: str
    role: str


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child: str
    parent: str


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] = Field(description="roles, collections and rules, as in a policy file.")


class ImportIn(PolicyIn):
    replace: bool = Field(
        default=False, description="Replace the stored policy instead of merging."
    )


class TestsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tests: list[dict[str, Any]]
    policy: dict[str, Any] | None = Field(default=None, description="Test this policy instead.")


class ChangeOut(BaseModel):
    version: int
    added: int
    removed: int

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(version=change.version, added=change.added, removed=change.removed)


def _item_out(stored: StoredItem) -> dict[str, Any]:
    item = stored.item
    base: dict[str, Any] = {"id": stored.id, "created_by": stored.created_by}
    if isinstance(item, AccessRule):
        return {**base, "kind": "rule", **rule_to_mapping(item)}
    if isinstance(item, RoleLink):
        return {**base, "kind": "role", "member": item.member, "role": item.role}
    return {**base, "kind": "collection", "child": item.child, "parent": item.parent}


def _explanation_out(why: Explanation) -> dict[str, Any]:
    return {
        "allowed": why.allowed,
        "reason": why.reason,
        "admin_chain": list(why.admin_chain),
        "rules": [
            {
                "rule": rule_to_mapping(h.rule),
                "effect": h.effect,
                "chain": list(h.chain),
                "note": h.note,
            }
            for h in why.hits
        ],
        "ignored": [
            {"rule": rule_to_mapping(p.rule), "consequence": p.consequence, "problem": p.message}
            for p in why.ignored
        ],
    }


def _admin(request: Request) -> PolicyAdmin:
    runtime: Runtime = request.app.state.runtime
    return PolicyAdmin(runtime.policy_store, runtime.policies)


def _http_error(exc: KBError) -> HTTPException:
    return HTTPException(status_code=404 if isinstance(exc, NotFound) else 400, detail=exc.message)


def _policy(data: dict[str, Any] | None) -> PolicySet | None:
    return None if data is None else parse_policy_data(data, "policy")


async def _add(request: Request, admin: Caller, item: PolicyItem) -> ChangeOut:
    try:
        return ChangeOut.of(await _admin(request).add([item], _rest(admin)))
    except KBError as exc:
        raise _http_error(exc) from None


def _rest(caller: Caller) -> Caller:
    """The store audits with the caller's transport; admin REST calls are ``rest``."""
    return Caller(
        subject=caller.subject,
        principals=caller.principals,
        transport="rest",
        client_id=caller.client_id,
        scopes=caller.scopes,
    )


@router.get("", summary="The policy version and every stored rule with its id")
async def list_policy(request: Request, admin: Admin) -> dict[str, Any]:
    version, items = await _admin(request).list_items()
    return {"version": version, "items": [_item_out(s) for s in items]}


@router.post("/rules", status_code=201, summary="Add an access rule")
async def add_rule(request: Request, admin: Admin, body: RuleIn) -> ChangeOut:
    try:
        rule = rule_from_mapping(body.model_dump())
    except KBError as exc:
        raise _http_error(exc) from None
    return await _add(request, admin, rule)


@router.post("/roles", status_code=201, summary="Give a member a role")
async def add_role(request: Request, admin: Admin, body: RoleIn) -> ChangeOut:
    return await _add(request, admin, RoleLink(body.member, body.role))


@router.post("/collections", status_code=201, summary="Place a collection below another")
async def add_collection(request: Request, admin: Admin, body: CollectionIn) -> ChangeOut:
    return await _add(request, admin, CollectionLink(body.child, body.parent))


@router.delete("/{rule_id}", summary="Remove a rule by id")
async def remove_rule(request: Request, admin: Admin, rule_id: RowId) -> ChangeOut:
    try:
        return ChangeOut.of(await _admin(request).remove([rule_id], _rest(admin)))
    except KBError as exc:
        raise _http_error(exc) from None


@router.post("/import", summary="Merge a policy into the stored one, or replace it")
async def import_policy(request: Request, admin: Admin, body: ImportIn) -> ChangeOut:
    try:
        policy = parse_policy_data(body.policy, "policy")
        change = await _admin(request).import_policy(policy, _rest(admin), replace=body.replace)
    except KBError as exc:
        raise _http_error(exc) from None
    return ChangeOut.of(change)


@router.get("/export", response_class=PlainTextResponse, summary="The stored policy as YAML")
async def export_policy(request: Request, admin: Admin) -> PlainTextResponse:
    return PlainTextResponse(await _admin(request).export(), media_type="application/yaml")


@router.post("/lint", summary="Lint a policy (or, without one, the stored policy)")
async def lint_policy(
    request: Request, admin: Admin, body: PolicyIn | None = None
) -> dict[str, Any]:
    try:
        issues = (
            lint(parse_policy_data(body.policy)) if body else await _admin(request).lint_stored()
        )
    except KBError as exc:
        raise _http_error(exc) from None
    return {
        "ok": not any(i.severity == "error" for i in issues),
        "issues": [
            {"severity": i.severity, "where": i.where, "message": i.message} for i in issues
        ],
    }


@router.post("/test", summary="Check expectations: principals against documents")
async def test_policy(request: Request, admin: Admin, body: TestsIn) -> dict[str, Any]:
    try:
        outcomes = await _admin(request).run_tests({"tests": body.tests}, _policy(body.policy))
    except KBError as exc:
        raise _http_error(exc) from None
    return {
        "passed": all(o.passed for o in outcomes),
        "results": [
            {
                "index": o.index,
                "as": list(o.principals),
                "target": o.target,
                "expected": o.expected,
                "actual": o.actual,
                "explanation": _explanation_out(o.explanation),
            }
            for o in outcomes
        ],
    }


@router.get("/explain", summary="Every rule that allows or denies a document, with role chains")
async def explain_access(
    request: Request,
    admin: Admin,
    as_: Annotated[str, Query(alias="as", description="Principals, comma-separated.")],
    doc: Annotated[str, Query(description="Document id.")],
) -> dict[str, Any]:
    try:
        why = await _admin(request).explain(parse_principals(as_), doc)
    except KBError as exc:
        raise _http_error(exc) from None
    return _explanation_out(why)


@router.get("/who-can", summary="The principals that can read a document")
async def who_can(
    request: Request, admin: Admin, doc: Annotated[str, Query(description="Document id.")]
) -> list[dict[str, Any]]:
    try:
        readers = await _admin(request).who_can(doc)
    except KBError as exc:
        raise _http_error(exc) from None
    return [{"principal": r.principal, **_explanation_out(r.explanation)} for r in readers]


@router.post("/diff", summary="Per principal, the documents a proposed policy grants or takes away")
async def diff_policy(request: Request, admin: Admin, body: PolicyIn) -> list[dict[str, Any]]:
    try:
        proposed = parse_policy_data(body.policy, "policy")
        errors = [i for i in lint(proposed) if i.severity == "error"]
        if errors:
            raise InvalidRequest(
                "the proposed policy does not lint clean: " + "; ".join(map(str, errors[:5]))
            )
        changes = await _admin(request).diff(proposed)
    except KBError as exc:
        raise _http_error(exc) from None
    return [
        {"principal": c.principal, "gained": list(c.gained), "lost": list(c.lost)} for c in changes
    ]


__all__ = ["router"]
