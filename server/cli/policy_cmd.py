"""`kb policy`: list, add, remove, import, export, lint, test, explain, who-can, diff.

Every change is one audited, versioned transaction (see ``docs/policies.md``); running
servers pick it up through LISTEN/NOTIFY within milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml
from rich.table import Table

from core.errors import InvalidRequest, PolicyError
from core.identity import Caller
from policies.admin import PolicyAdmin, TestOutcome, parse_principals
from policies.explain import Explanation
from policies.lint import lint
from policies.rules import AccessRule, CollectionLink, PolicySet, RoleLink, parse_policy_yaml
from policies.selectors import canonical_conditions
from server.audit.cli_calls import operator
from server.cli.common import State, console, err_console, fail, handle_errors, run_async
from server.runtime import open_runtime

app = typer.Typer(
    help="Access policies: list, add, remove, import, export, lint, test, explain, who-can, diff.",
    no_args_is_help=True,
)
add_app = typer.Typer(help="Add a rule, a role link or a collection link.", no_args_is_help=True)
app.add_typer(add_app, name="add")

T = TypeVar("T")


def _actor() -> Caller:
    # The CLI has no token: the operating-system user acts as a service principal.
    return Caller.of(f"svc:{operator()}", transport="cli", client_id=operator())


@asynccontextmanager
async def _admin() -> AsyncIterator[PolicyAdmin]:
    async with open_runtime(State.settings(), load_model=False, watch_policies=False) as rt:
        yield PolicyAdmin(rt.policy_store, rt.policies)


def _run(action: Callable[[PolicyAdmin], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _admin() as admin:
            return await action(admin)

    return run_async(go())


def _read_policy(path: Path) -> PolicySet:
    return parse_policy_yaml(_read_text(path), f"policy file {path.name}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"{path} cannot be read: {exc.strerror}") from None


def _print_explanation(why: Explanation) -> None:
    colour = "green" if why.allowed else "red"
    console.print(f"[bold {colour}]{'allow' if why.allowed else 'deny'}[/]: {why.reason}")
    if why.admin_chain:
        console.print(f"  admin via {' -> '.join(why.admin_chain)}", highlight=False)
    for hit in why.hits:
        console.print(f"  {hit.effect:5} {hit.describe()}", highlight=False)
    for problem in why.ignored:
        console.print(
            f"  [yellow]{problem.consequence}[/] {problem.rule.describe()}: {problem.message}",
            highlight=False,
        )


def _explanation_json(why: Explanation) -> dict[str, Any]:
    return {
        "allowed": why.allowed,
        "reason": why.reason,
        "admin_chain": list(why.admin_chain),
        "rules": [
            {"rule": h.rule.describe(), "effect": h.effect, "chain": list(h.chain), "note": h.note}
            for h in why.hits
        ],
        "ignored": [
            {"rule": p.rule.describe(), "consequence": p.consequence, "problem": p.message}
            for p in why.ignored
        ],
    }


@app.command("list")
@handle_errors
def list_rules(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every stored rule with its id (what `remove` takes) and the policy version."""
    version, items = _run(lambda a: a.list_items())
    if as_json:
        rows = [{"id": s.id, "rule": s.item.describe(), "created_by": s.created_by} for s in items]
        typer.echo(json.dumps({"version": version, "items": rows}, indent=2))
        return
    table = Table("id", "kind", "rule", "by", title=f"policy version {version}")
    for s in items:
        kind = {"AccessRule": "rule", "RoleLink": "role", "CollectionLink": "collection"}
        table.add_row(str(s.id), kind[type(s.item).__name__], s.item.describe(), s.created_by)
    console.print(table)


def _report_change(what: str, version: int, added: int, removed: int) -> None:
    console.print(f"{what}: policy version {version} (+{added} / -{removed})", highlight=False)


@add_app.command("rule")
@handle_errors
def add_rule(
    subject: str = typer.Argument(..., help="Principal or role: user:alice, group:hr, role:staff."),
    obj: str = typer.Argument(
        ...,
        metavar="OBJECT",
        help="collection:NAME, path:/prefix/, source:NAME, doc:ID, acl:source or *.",
    ),
    deny: bool = typer.Option(False, "--deny", help="A deny rule (deny beats allow)."),
    max_level: int | None = typer.Option(None, help="Clearance: only documents up to this level."),
    when: list[str] = typer.Option(
        [], "--when", help="Condition, e.g. 'metadata.team == \"x\"' (repeatable; all must hold)."
    ),
    comment: str = typer.Option("", help="Why the rule exists."),
) -> None:
    """Add an access rule."""
    rule = AccessRule(
        subject,
        obj,
        "deny" if deny else "allow",
        max_level,
        canonical_conditions(" && ".join(when)),
        comment,
    )
    change = _run(lambda a: a.add([rule], _actor()))
    _report_change("added", change.version, change.added, change.removed)


@add_app.command("role")
@handle_errors
def add_role(
    member: str = typer.Argument(..., help="Principal or role that gets the role."),
    role: str = typer.Argument(..., help="role:NAME"),
) -> None:
    """Give MEMBER the role ROLE (a role member makes a hierarchy)."""
    change = _run(lambda a: a.add([RoleLink(member, role)], _actor()))
    _report_change("added", change.version, change.added, change.removed)


@add_app.command("collection")
@handle_errors
def add_collection(
    child: str = typer.Argument(..., help="Collection placed below PARENT."),
    parent: str = typer.Argument(..., help="Collection whose rules then cover CHILD."),
) -> None:
    """Place collection CHILD below PARENT."""
    change = _run(lambda a: a.add([CollectionLink(child, parent)], _actor()))
    _report_change("added", change.version, change.added, change.removed)


@app.command()
@handle_errors
def remove(ids: list[int] = typer.Argument(..., help="Rule ids from `kb policy list`.")) -> None:
    """Remove rules by id (all or nothing)."""
    change = _run(lambda a: a.remove(ids, _actor()))
    _report_change("removed", change.version, change.added, change.removed)


@app.command("import")
@handle_errors
def import_file(
    file: Path = typer.Argument(..., help="Policy YAML file."),
    replace: bool = typer.Option(
        False, "--replace", help="Replace the stored policy (default: merge)."
    ),
) -> None:
    """Import a policy file (refused unless it lints clean)."""
    policy = _read_policy(file)
    change = _run(lambda a: a.import_policy(policy, _actor(), replace=replace))
    _report_change("imported", change.version, change.added, change.removed)


@app.command()
@handle_errors
def export(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Print the stored policy as a policy file."""
    text = _run(lambda a: a.export())
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {output}", highlight=False)


@app.command("lint")
@handle_errors
def lint_cmd(
    file: Path | None = typer.Argument(None, help="Policy file (default: the stored policy)."),
) -> None:
    """Report rules that cannot be compiled, hierarchy cycles and unprefixed subjects."""
    issues = lint(_read_policy(file)) if file else _run(lambda a: a.lint_stored())
    for issue in issues:
        style = "red" if issue.severity == "error" else "yellow"
        console.print(f"[{style}]{issue}[/]", highlight=False)
    if any(i.severity == "error" for i in issues):
        raise fail(f"{sum(i.severity == 'error' for i in issues)} error(s)")
    console.print("policy OK" if not issues else "policy OK (warnings only)")


@app.command()
@handle_errors
def test(
    file: Path | None = typer.Argument(None, help="YAML test file of expectations."),
    as_: str | None = typer.Option(None, "--as", help="Principals, comma-separated."),
    doc: str | None = typer.Option(None, "--doc", help="Document id."),
    expect: str | None = typer.Option(None, help="allow or deny: exit 1 if it differs."),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="Test this policy file instead."
    ),
) -> None:
    """Check principals against a document, or run a test file; exit 1 on any failure."""
    policy = _read_policy(policy_file) if policy_file else None
    if file is not None:
        if as_ or doc:
            raise InvalidRequest("give a test file, or --as with --doc, not both")
        try:
            data = yaml.safe_load(_read_text(file))
        except yaml.YAMLError:
            raise InvalidRequest(f"test file {file.name} is not valid YAML") from None
    elif as_ and doc:
        data = {"tests": [{"as": parse_principals(as_), "doc": doc, "expect": expect or "allow"}]}
    else:
        raise InvalidRequest("give a test file, or --as PRINCIPALS --doc ID")
    outcomes: list[TestOutcome] = _run(lambda a: a.run_tests(data, policy))
    if file is None:
        _print_explanation(outcomes[0].explanation)
        if expect is not None and not outcomes[0].passed:
            raise fail(f"expected {expect}")
        return
    for o in outcomes:
        mark = "[green]ok[/]" if o.passed else "[red]FAIL[/]"
        console.print(
            f"{mark} test {o.index}: {','.join(o.principals)} on {o.target}: "
            f"expected {o.expected}, got {o.actual}",
            highlight=False,
        )
    failed = [o for o in outcomes if not o.passed]
    if failed:
        raise fail(f"{len(failed)} of {len(outcomes)} test(s) failed")
    console.print(f"{len(outcomes)} test(s) passed")


@app.command()
@handle_errors
def explain(
    as_: str = typer.Option(..., "--as", help="Principals, comma-separated."),
    doc: str = typer.Option(..., "--doc", help="Document id."),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="Explain under this policy file."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every rule that allows or denies the document for these principals, with role chains."""
    principals = parse_principals(as_)
    policy = _read_policy(policy_file) if policy_file else None
    why = _run(lambda a: a.explain(principals, doc, policy))
    if as_json:
        typer.echo(json.dumps(_explanation_json(why), indent=2))
    else:
        _print_explanation(why)


@app.command("who-can")
@handle_errors
def who_can(
    doc: str = typer.Option(..., "--doc", help="Document id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The principals that can read a document, and through which rules."""
    readers = _run(lambda a: a.who_can(doc))
    if as_json:
        rows = [{"principal": r.principal, **_explanation_json(r.explanation)} for r in readers]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not readers:
        console.print("nobody but admins can read this document")
    for r in readers:
        via = r.explanation.hits[0].describe() if r.explanation.hits else "admin"
        console.print(f"{r.principal}  ({via})", highlight=False)


@app.command()
@handle_errors
def diff(
    file: Path = typer.Argument(
        ..., help="Proposed policy file (as `import --replace` would apply)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per principal, the documents the proposed policy would grant or take away."""
    proposed = _read_policy(file)
    problems = [i for i in lint(proposed) if i.severity == "error"]
    if problems:
        raise PolicyError(
            "the proposed policy does not lint clean: " + "; ".join(map(str, problems[:5]))
        )
    changes = _run(lambda a: a.diff(proposed))
    if as_json:
        rows = [{"principal": c.principal, "gained": c.gained, "lost": c.lost} for c in changes]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not changes:
        console.print("no principal gains or loses any document")
    for c in changes:
        console.print(f"{c.principal}: +{len(c.gained)} / -{len(c.lost)}", highlight=False)
        for d in c.gained:
            console.print(f"  [green]+ {d}[/]", highlight=False)
        for d in c.lost:
            console.print(f"  [red]- {d}[/]", highlight=False)
