"""What `make test` needs beyond Python: one line per prerequisite, exit 1 if any is missing.

The test suite runs real parts: the Node MCP clients (installed from npm), and MariaDB and
PostgreSQL servers on loopback for the SQL connector tests (MARIADB on 127.0.0.1:3306 as
root without a password, PostgreSQL on 127.0.0.1:5432 as postgres with trust auth). The
embedded PostgreSQL that holds the knowledge base itself needs nothing installed.

Run by `make prereqs` (and so by `make test` and `make test-fast`, which skips Node).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

OK, MISSING = "ok     ", "MISSING"


def _git() -> str | None:
    return None if shutil.which("git") else "git not found (apt-get install git)"


def _npm() -> str | None:
    if shutil.which("npm"):
        return None
    return "npm not found: the Node MCP clients install from npm (apt-get install npm)"


def _mariadb() -> str | None:
    import pymysql

    try:
        pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3).close()
    except pymysql.MySQLError as exc:
        return (
            f"MariaDB on 127.0.0.1:3306 (root, no password) refused: {exc.args[-1]} "
            "(apt-get install mariadb-server; service mariadb start)"
        )
    return None


def _postgres() -> str | None:
    import psycopg

    try:
        psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3
        ).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL on 127.0.0.1:5432 (postgres, trust) refused: {first} "
            "(apt-get install postgresql; trust auth for 127.0.0.1 in pg_hba.conf)"
        )
    return None


def _apt_binary(binary: str, package: str, why: str) -> Callable[[], str | None]:
    """A Debian package the suite runs as a real part; installed when we may (root + apt)."""

    def found() -> bool:
        # Daemons such as nginx live in /usr/sbin, which a user's PATH may lack.
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        return shutil.which(binary, path=path) is not None

    def check() -> str | None:
        if found():
            return None
        if os.geteuid() == 0 and shutil.which("apt-get"):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
            ):
                subprocess.run(cmd, env=env, check=False, capture_output=True, timeout=900)
            if found():
                return None
        return f"{binary} not found: {why} (apt-get install {package})"

    return check


CHECKS: dict[str, Callable[[], str | None]] = {
    "git": _git,
    "npm (Node MCP clients)": _npm,
    "MariaDB 127.0.0.1:3306": _mariadb,
    "PostgreSQL 127.0.0.1:5432": _postgres,
    # Only `docker-compose config` is used (validating the compose files; no engine needed).
    "docker-compose (compose file validation)": _apt_binary(
        "docker-compose", "docker-compose", "the compose files are validated with it"
    ),
    "nginx (load balancer in the replica tests)": _apt_binary(
        "nginx", "nginx-light", "server replicas are tested behind a real nginx"
    ),
    "chromium (admin console browser tests)": _apt_binary(
        "chromium", "chromium", "Playwright drives Debian's Chromium headless"
    ),
    "wrk (throughput benchmark load generator)": _apt_binary(
        "wrk", "wrk", "bench throughput drives the MCP endpoint with it"
    ),
    "prometheus (monitoring tests: promtool, a real scrape)": _apt_binary(
        "promtool", "prometheus", "the alert rules and the dashboard run on a real Prometheus"
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-node", action="store_true", help="Skip the npm check.")
    args = parser.parse_args(argv)
    missing = 0
    for name, check in CHECKS.items():
        if args.no_node and name.startswith("npm"):
            continue
        problem = check()
        print(f"{OK if problem is None else MISSING} {name}" + (f": {problem}" if problem else ""))
        missing += problem is not None
    if missing:
        print(f"{missing} prerequisite(s) of the test suite missing; see README.md 'Development'")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
