"""`make test` names each prerequisite it needs besides Python, one line apiece."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "check_prereqs.py"


def run(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_each_prerequisite_gets_one_line() -> None:
    ok = run("/usr/local/bin:/usr/bin:/bin")
    lines = ok.stdout.splitlines()
    assert [line.split(None, 1)[1].split(":")[0] for line in lines[:4]] == [
        "git",
        "npm (Node MCP clients)",
        "MariaDB 127.0.0.1",
        "PostgreSQL 127.0.0.1",
    ]
    assert ok.returncode == 0, ok.stdout


def test_a_missing_tool_is_named_with_its_fix_and_fails_the_run() -> None:
    bare = run("/nonexistent")  # no git, no npm on PATH
    assert bare.returncode == 1
    assert re.search(r"^MISSING git: .*apt-get install git", bare.stdout, re.M)
    assert re.search(r"^MISSING npm .*apt-get install npm", bare.stdout, re.M)


def test_make_test_runs_the_check_first() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^pytest: .*\bprereqs\b", makefile, re.M)
    assert re.search(r"^test-fast: .*\bprereqs\b", makefile, re.M)
    assert 'pytest -m "not slow and not node"' in makefile
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for needle in (
        "npm",
        "MariaDB on 127.0.0.1:3306",
        "PostgreSQL on 127.0.0.1:5432",
        "make test-fast",
    ):
        assert needle in readme
