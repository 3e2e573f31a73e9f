"""`kb mcp` answers unreadable lines instead of leaving the host waiting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import IO, Any

from tests.support.server_process import KB, REPO, server_env


def read_message(stdout: IO[str]) -> dict[str, Any]:
    line = stdout.readline()
    assert line, "kb mcp closed stdout"
    message: dict[str, Any] = json.loads(line)
    return message


def test_invalid_lines_get_jsonrpc_errors_and_the_session_goes_on(
    fresh_database: str, tmp_path: Path
) -> None:
    env = server_env(fresh_database, tmp_path)
    proc = subprocess.Popen(
        [str(KB), "mcp", "--as", "user:alice"],
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("this is not json\n")
        proc.stdin.flush()
        parse = read_message(proc.stdout)
        assert parse["id"] is None and parse["error"]["code"] == -32700, parse
        proc.stdin.write('{"hello": "world"}\n')
        proc.stdin.flush()
        invalid = read_message(proc.stdout)
        assert invalid["id"] is None and invalid["error"]["code"] == -32600, invalid
        # The session is unharmed: a real request still gets its answer.
        initialize = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "hostile", "version": "0"},
            },
        }
        proc.stdin.write(json.dumps(initialize) + "\n")
        proc.stdin.flush()
        answer = read_message(proc.stdout)
        assert answer["id"] == 7 and "result" in answer, answer
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
