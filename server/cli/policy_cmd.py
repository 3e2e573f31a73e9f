"""`kb policy`: list, add, remove, import, export, lint, test, explain, who-can, diff.

Every change is one audited, versioned transaction (see ``docs/policies.md``); running
servers pick it up through LISTEN/NOTIFY within milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from core.errors import InvalidRequest
from policies.admin import TestOutcome, parse_principals
from policies.explain import Explanation
from policies.rules import AccessRule, CollectionLink, PolicySet, RoleLink, parse_policy_yaml
from policies.selectors import canonical_conditions
from server.cli.common import console, err_console, fail, handle_errors
from server.cli.operator import confirm_destructive, run_admin
from server.usecases import policy_admin as usecases

app = typer.Typer(
    help="Access policies: list, add, remove, import, export, lint, test, explain, who-can, diff.",
    no_args_is_help=True,
)
add_app = typer.Typer(help="Add a rule, a role link or a collection link.", no_args_is_help=True)
app.add_typer(add_app, name="add")


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
    version, items = run_admin(usecases.list_items)
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
    change = run_admin(lambda rt, admin: usecases.add_items(rt, admin, [rule]))
    _report_change("added", change.version, change.added, change.removed)


@add_app.command("role")
@handle_errors
def add_role(
    member: str = typer.Argument(..., help="Principal or role that gets the role."),
    role: str = typer.Argument(..., help="role:NAME"),
) -> None:
    """Give MEMBER the role ROLE (a role member makes a hierarchy)."""
    link = RoleLink(member, role)
    change = run_admin(lambda rt, admin: usecases.add_items(rt, admin, [link]))
    _report_change("added", change.version, change.added, change.removed)


@add_app.command("collection")
@handle_errors
def add_collection(
    child: str = typer.Argument(..., help="Collection placed below PARENT."),
    parent: str = typer.Argument(..., help="Collection whose rules then cover CHILD."),
) -> None:
    """Place collection CHILD below PARENT."""
    link = CollectionLink(child, parent)
    change = run_admin(lambda rt, admin: usecases.add_items(rt, admin, [link]))
    _report_change("added", change.version, change.added, change.removed)


@app.command()
@handle_errors
def remove(
    ids: list[int] = typer.Argument(..., help="Rule ids from `kb policy list`."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove rules by id (all or nothing)."""
    confirm_destructive(yes, f"remove policy rule(s) {', '.join(map(str, ids))}?")
    change = run_admin(lambda rt, admin: usecases.remove_items(rt, admin, ids))
    _report_change("removed", change.version, change.added, change.removed)


@app.command("import")
@handle_errors
def import_file(
    file: Path = typer.Argument(..., help="Policy YAML file."),
    replace: bool = typer.Option(
        False, "--replace", help="Replace the stored policy (default: merge)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --replace: do not ask."),
) -> None:
    """Import a policy file (refused unless it lints clean)."""
    policy = _read_policy(file)
    if replace:
        confirm_destructive(yes, f"replace the whole stored policy with {file.name}?")
    change = run_admin(lambda rt, admin: usecases.import_policy(rt, admin, policy, replace=replace))
    _report_change("imported", change.version, change.added, change.removed)


@app.command()
@handle_errors
def export(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Print the stored policy as a policy file."""
    text = run_admin(usecases.export_policy)
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
    policy = _read_policy(file) if file else None
    issues = run_admin(lambda rt, admin: usecases.lint_policy(rt, admin, policy))
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
    outcomes: list[TestOutcome] = run_admin(
        lambda rt, admin: usecases.run_tests(rt, admin, data, policy)
    )
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
    why = run_admin(lambda rt, admin: usecases.explain(rt, admin, principals, doc, policy))
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
    readers = run_admin(lambda rt, admin: usecases.who_can(rt, admin, doc))
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
    changes = run_admin(lambda rt, admin: usecases.diff(rt, admin, proposed))
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
