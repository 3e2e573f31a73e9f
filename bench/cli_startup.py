"""CLI start-up: median wall time of `kb --help`, `kb version` and `kb policy list`.

``python -m bench cli_startup [--rounds 7]``

Each command runs in a fresh interpreter, the way an operator types it, with the sample
configuration (examples/kb.yaml: a files source and a SQL source) and a scratch KB_HOME.
The embedded database is started and migrated once beforehand and held open by this
process, so `kb policy list` measures the command (imports, settings, joining the running
database, one query), not the 4 s first start of PostgreSQL. The code measured is the
tree this file lives in (`python -c` from the repository root), so an older checkout with
this file copied in gives the "before" figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "kb.yaml"
COMMANDS: list[list[str]] = [["--help"], ["version"], ["policy", "list"]]
RUN_KB = "import sys; from server.cli.main import app; sys.argv[0] = 'kb'; app()"


def time_command(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_KB, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"kb {' '.join(args)} failed ({done.returncode}): {done.stderr[-1500:]}")
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli_startup")
    parser.add_argument("--rounds", type=int, default=7, help="Runs per command.")
    args = parser.parse_args(argv)

    from server.db import migrate
    from server.db.engine import resolve_database
    from server.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="kb-bench-cli-") as home:
        env = {
            **os.environ,
            "KB_CONFIG": str(CONFIG),
            "KB_HOME": home,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        settings = load_settings(CONFIG, home=home)
        target = resolve_database(settings)  # starts the embedded server; held until the end
        try:
            migrate.upgrade(target.url)
            rows = []
            for command in COMMANDS:
                time_command(command, env)  # warm the page cache and .pyc files
                times = [time_command(command, env) for _ in range(args.rounds)]
                rows.append((f"kb {' '.join(command)}", times))
        finally:
            target.close()

    print(f"\nCLI start-up, {args.rounds} runs each (wall time, seconds)\n")
    print(f"| {'command':<16} | {'median':>6} | {'min':>6} | {'max':>6} |")
    print(f"|{'-' * 18}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    for name, times in rows:
        print(
            f"| {name:<16} | {statistics.median(times):6.2f} | {min(times):6.2f} "
            f"| {max(times):6.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
