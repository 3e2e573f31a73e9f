"""`kb policy` end to end with typer's CliRunner against a fresh database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from server.cli.main import app

DOC = "00000000-0000-0000-0000-0000000000d1"
OTHER = "00000000-0000-0000-0000-0000000000d2"

POLICY = """
roles:
  group:hr: role:hr
  role:hr: role:staff
collections:
  payroll: hr
rules:
  - subject: role:staff
    object: acl:source
  - subject: role:hr
    object: collection:hr
    max_level: 2
  - subject: group:contractors
    object: path:/hr/salaries/
    effect: deny
"""


@pytest.fixture
def kb(fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for name in ("KB_CONFIG", "KB_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    monkeypatch.setenv("KB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO sources (name, kind) VALUES ('files', 'files')")
        for doc, path, acl in (
            (DOC, "/hr/salaries/2024.txt", ["group:finance"]),
            (OTHER, "/eng/readme.md", ["user:bob"]),
        ):
            conn.execute(
                "INSERT INTO documents (id, source, external_id, uri, title, content_type,"
                " content_hash, collection, path, level, acl)"
                " VALUES (%s, 'files', %s, %s, 't', 'text/plain', 'h', %s, %s, 1, %s)",
                (
                    uuid.UUID(doc),
                    path,
                    "file://" + path,
                    "payroll" if doc == DOC else "eng",
                    path,
                    acl,
                ),
            )
    yield CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["policy", *args])
    return result.exit_code, result.output


def test_policy_lifecycle(kb: CliRunner, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    assert invoke(kb, "lint", str(policy)) == (0, "policy OK\n")

    # diff before import: hr gains the payroll document, nobody loses anything.
    code, out = invoke(kb, "diff", str(policy), "--json")
    assert code == 0, out
    gains = {row["principal"]: row["gained"] for row in json.loads(out)}
    assert gains["group:hr"] == [DOC] and all(not row["lost"] for row in json.loads(out))

    code, out = invoke(kb, "import", str(policy))
    assert code == 0 and "policy version 1 (+6 / -0)" in out, out

    code, out = invoke(kb, "explain", "--as", "user:ann,group:hr,group:contractors", "--doc", DOC)
    assert code == 0
    assert "deny" in out and "group:contractors" in out and "role:hr" in out

    code, out = invoke(kb, "explain", "--as", "user:ann,group:hr", "--doc", DOC, "--json")
    why = json.loads(out)
    assert why["allowed"] and why["rules"][0]["chain"] == ["group:hr", "role:hr"]

    code, out = invoke(kb, "who-can", "--doc", DOC)
    assert code == 0 and "group:hr" in out and "group:contractors" not in out

    assert invoke(kb, "test", "--as", "user:bob", "--doc", DOC, "--expect", "deny")[0] == 0
    assert invoke(kb, "test", "--as", "user:bob", "--doc", DOC, "--expect", "allow")[0] == 1

    tests = tmp_path / "tests.yaml"
    tests.write_text(
        f"""
tests:
  - as: [user:ann, group:hr]
    doc: {DOC}
    expect: allow
  - as: user:bob
    doc: {OTHER}
    expect: deny            # bob has no role: the acl:source rule is for role:staff
  - as: [group:hr]
    document: {{collection: hr/x, level: 3, acl: []}}
    expect: deny            # above the role's clearance
"""
    )
    code, out = invoke(kb, "test", str(tests))
    assert code == 0, out
    assert "3 test(s) passed" in out

    code, out = invoke(kb, "add", "rule", "user:bob", "source:files", "--when", "level <= 1")
    assert code == 0 and "policy version 2" in out
    code, out = invoke(kb, "list", "--json")
    listing = json.loads(out)
    assert listing["version"] == 2 and len(listing["items"]) == 7
    bob_rule = next(i for i in listing["items"] if i["rule"].startswith("allow user:bob"))
    # Destructive: refused without --yes when nobody can confirm (CliRunner's stdin).
    code, out = invoke(kb, "remove", str(bob_rule["id"]))
    assert code == 2 and "--yes" in out
    assert invoke(kb, "remove", str(bob_rule["id"]), "--yes")[0] == 0

    code, out = invoke(kb, "export")
    assert code == 0 and "collection:hr" in out and "user:bob" not in out


def test_policy_errors_are_one_clear_line(kb: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - subject: alice\n    object: path:/hr/*/salary\n")
    code, out = invoke(kb, "lint", str(bad))
    assert code == 1 and "prefix" in out and "wildcard" in out
    code, out = invoke(kb, "import", str(bad))
    assert code == 1 and "policy refused" in out
    code, out = invoke(kb, "add", "rule", "user:a", "*", "--when", "title == 'x'")
    assert code == 1 and "expected ATTRIBUTE OP VALUE" in out
    code, out = invoke(kb, "remove", "999", "--yes")
    assert code == 1 and "no policy rule with id 999" in out
    code, out = invoke(kb, "explain", "--as", "alice", "--doc", DOC)
    assert code == 1 and "prefix" in out
    code, out = invoke(kb, "who-can", "--doc", str(uuid.uuid4()))
    assert code == 1 and "no document" in out
    assert "Traceback" not in out
