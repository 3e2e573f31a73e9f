"""The CLI starts without the heavy half of the stack.

`kb --help`, `kb version` and every command that does not embed must not import torch, the
parsers or the server stack just to start. Each case runs in a fresh interpreter and reads
``sys.modules`` afterwards; timings live in ``python -m bench cli_startup``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli.main import LAZY_COMMANDS, load_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "kb.yaml"

MODEL = ("torch", "sentence_transformers", "transformers")
PARSERS = ("pypdfium2", "pypdf", "docx", "pptx", "openpyxl", "trafilatura", "bs4")
SERVER_STACK = ("mcp", "fastapi", "uvicorn", "alembic", "casbin", "procrastinate")

# Runs `kb ARGS` in-process, then prints which watched modules got imported, as JSON.
PROBE = """
import json, sys
from server.cli.main import app
sys.argv = ["kb", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print("\\nIMPORTED=" + json.dumps(sorted(m for m in WATCHED if m in sys.modules)))
"""


def imported_after(args: list[str], watched: tuple[str, ...], *, preload: str = "") -> list[str]:
    env = {**os.environ, "KB_CONFIG": str(EXAMPLE_CONFIG)}
    code = preload + PROBE.replace("WATCHED", repr(watched))
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    marker = [line for line in done.stdout.splitlines() if line.startswith("IMPORTED=")]
    assert marker, f"probe failed: {done.stderr[-2000:]}"
    return list(json.loads(marker[-1].removeprefix("IMPORTED=")))


@pytest.mark.parametrize("args", [["--help"], ["version"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    assert imported_after(args, MODEL + PARSERS + SERVER_STACK) == []


def test_loading_a_config_with_sources_imports_no_parser() -> None:
    # examples/kb.yaml has a files source and a sql source: validating them needs only
    # their config models (entry point group kb.connector_configs), not the parsers.
    assert imported_after(["config", "show"], MODEL + PARSERS) == []


def test_stdio_server_modules_import_no_parser_and_no_torch() -> None:
    # What `kb mcp` imports before it starts: its command, the stdio server and the
    # settings. The model is loaded later, on a thread; parsers never.
    preload = (
        "import server.cli.mcp_cmd, server.mcp.stdio\n"
        "from server.settings import load_settings\n"
        f"load_settings({str(EXAMPLE_CONFIG)!r})\n"
    )
    assert imported_after(["--help"], MODEL + PARSERS, preload=preload) == []


def test_help_lists_every_command_with_its_own_summary() -> None:
    # `kb --help` shows the static summaries; they must say what each command's help says.
    for name, spec in LAZY_COMMANDS.items():
        command = load_command(name)
        text = command.short_help or command.help or ""
        first_paragraph = " ".join(text.replace("\b", "").strip().split("\n\n")[0].split())
        assert first_paragraph == spec.summary, name


def test_files_config_extensions_match_the_parsers() -> None:
    from connectors.files_config import SUPPORTED_EXTENSIONS
    from connectors.parsers import SUPPORTED_EXTENSIONS as PARSED

    assert tuple(SUPPORTED_EXTENSIONS) == tuple(PARSED)
