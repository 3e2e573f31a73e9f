"""``/admin/policies``: the access policy over REST (admin role required).

The same operations as ``kb policy``, through the same use cases
(:mod:`server.usecases.policy_admin`). Policies travel as JSON in the policy-file
structure (``roles``, ``collections``, ``rules``); ``/export`` returns the YAML file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from policies.admin import parse_principals
from policies.capability import AdminCaller
from policies.explain import Explanation
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
from server.http.deps import admin_caller
from server.http.params import RowId
from server.usecases import policy_admin as usecases

if TYPE_CHECKING:
    from server.runtime import Runtime

# One dependency for the whole router: no route here runs without the admin capability.
router = APIRouter(prefix="/admin/policies", tags=["admin"], dependencies=[Depends(admin_caller)])

Admin = Annotated[AdminCaller, Depends(admin_caller)]


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


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _policy(data: dict[str, Any] | None) -> PolicySet | None:
    return None if data is None else parse_policy_data(data, "policy")


@router.get("", summary="The policy version and every stored rule with its id")
async def list_policy(request: Request, admin: Admin) -> dict[str, Any]:
    version, items = await usecases.list_items(_runtime(request), admin)
    return {"version": version, "items": [_item_out(s) for s in items]}


async def _add(request: Request, admin: AdminCaller, item: PolicyItem) -> ChangeOut:
    return ChangeOut.of(await usecases.add_items(_runtime(request), admin, [item]))


@router.post("/rules", status_code=201, summary="Add an access rule")
async def add_rule(request: Request, admin: Admin, body: RuleIn) -> ChangeOut:
    return await _add(request, admin, rule_from_mapping(body.model_dump()))


@router.post("/roles", status_code=201, summary="Give a member a role")
async def add_role(request: Request, admin: Admin, body: RoleIn) -> ChangeOut:
    return await _add(request, admin, RoleLink(body.member, body.role))


@router.post("/collections", status_code=201, summary="Place a collection below another")
async def add_collection(request: Request, admin: Admin, body: CollectionIn) -> ChangeOut:
    return await _add(request, admin, CollectionLink(body.child, body.parent))


@router.delete("/{rule_id}", summary="Remove a rule by id")
async def remove_rule(request: Request, admin: Admin, rule_id: RowId) -> ChangeOut:
    return ChangeOut.of(await usecases.remove_items(_runtime(request), admin, [rule_id]))


@router.post("/import", summary="Merge a policy into the stored one, or replace it")
async def import_policy(request: Request, admin: Admin, body: ImportIn) -> ChangeOut:
    policy = parse_policy_data(body.policy, "policy")
    change = await usecases.import_policy(_runtime(request), admin, policy, replace=body.replace)
    return ChangeOut.of(change)


@router.get("/export", response_class=PlainTextResponse, summary="The stored policy as YAML")
async def export_policy(request: Request, admin: Admin) -> PlainTextResponse:
    text = await usecases.export_policy(_runtime(request), admin)
    return PlainTextResponse(text, media_type="application/yaml")


@router.post("/lint", summary="Lint a policy (or, without one, the stored policy)")
async def lint_policy(
    request: Request, admin: Admin, body: PolicyIn | None = None
) -> dict[str, Any]:
    policy = parse_policy_data(body.policy) if body else None
    issues = await usecases.lint_policy(_runtime(request), admin, policy)
    return {
        "ok": not any(i.severity == "error" for i in issues),
        "issues": [
            {"severity": i.severity, "where": i.where, "message": i.message} for i in issues
        ],
    }


@router.post("/test", summary="Check expectations: principals against documents")
async def test_policy(request: Request, admin: Admin, body: TestsIn) -> dict[str, Any]:
    outcomes = await usecases.run_tests(
        _runtime(request), admin, {"tests": body.tests}, _policy(body.policy)
    )
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
    why = await usecases.explain(_runtime(request), admin, parse_principals(as_), doc)
    return _explanation_out(why)


@router.get("/who-can", summary="The principals that can read a document")
async def who_can(
    request: Request, admin: Admin, doc: Annotated[str, Query(description="Document id.")]
) -> list[dict[str, Any]]:
    readers = await usecases.who_can(_runtime(request), admin, doc)
    return [{"principal": r.principal, **_explanation_out(r.explanation)} for r in readers]


@router.post("/diff", summary="Per principal, the documents a proposed policy grants or takes away")
async def diff_policy(request: Request, admin: Admin, body: PolicyIn) -> list[dict[str, Any]]:
    proposed = parse_policy_data(body.policy, "policy")
    changes = await usecases.diff(_runtime(request), admin, proposed)
    return [
        {"principal": c.principal, "gained": list(c.gained), "lost": list(c.lost)} for c in changes
    ]


__all__ = ["router"]
