"""``kb restore``: a backup made by :mod:`server.ops.backup` into an empty database.

Order matters for the runtime role (migration 0004, when this kb has it): the server acts
as ``kb_runtime``, which may only SELECT and INSERT on ``audit_log``. Roles are
cluster-wide and not in a database dump, so the role is created first (as 0004 does); the
dump is then restored
without owners (the restoring login owns everything, as it would after ``kb db upgrade``)
but **with** its grants, so ``kb_runtime`` gets exactly the privileges it had. The dump's
default privileges name the original owner, who may not exist here: they are skipped and
set again for the restoring login afterwards. Setting them *before* the tables exist
would hand ``kb_runtime`` UPDATE and DELETE on the audit log.

Schema revisions: a backup from a newer kb is refused before anything is touched; one
from an older kb is restored as it is, and the operator runs ``kb db upgrade`` (only
``kb serve`` and ``kb db upgrade`` migrate).
"""

from __future__ import annotations

import importlib
import logging
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import URL

from server.db import migrate
from server.db.engine import describe, to_libpq_dsn
from server.ops import pgtools
from server.ops.backup import DUMP, MANIFEST, Manifest, row_counts, schema_tables
from server.ops.pgtools import BackupError

log = logging.getLogger(__name__)


RUNTIME_ROLE_MIGRATION = "migrations.versions.0004_runtime_role"


class RestoreRefused(BackupError):
    """The target database is not empty and --force was not given."""


@dataclass
class RestoreResult:
    manifest: Manifest
    row_counts: dict[str, int]
    needs_upgrade: bool
    seconds: float


def read_manifest(file: Path) -> Manifest:
    """The manifest of ``file``, or BackupError if it is not a readable kb backup."""
    try:
        with tarfile.open(file, mode="r:") as tar:
            names = set(tar.getnames())
            if not {MANIFEST, DUMP} <= names:
                raise BackupError(f"{file} is not a kb backup (no {MANIFEST} and {DUMP})")
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise BackupError(f"{file}: {MANIFEST} is not a regular file")
            return Manifest.parse(member.read())
    except FileNotFoundError:
        raise BackupError(f"{file} does not exist") from None
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{file} is not a readable kb backup ({exc})") from None


def check_revision(manifest: Manifest) -> bool:
    """True if the backup's schema is older than this kb's (upgrade after restoring);
    BackupError if this kb does not know its revision (made by a newer kb)."""
    head = migrate.head_revision()
    if manifest.schema_revision == head:
        return False
    script = ScriptDirectory.from_config(migrate.alembic_config(URL.create("postgresql")))
    known = {rev.revision for rev in script.walk_revisions()}
    if manifest.schema_revision not in known:
        raise BackupError(
            f"the backup's schema revision {manifest.schema_revision} is unknown to this kb "
            f"(head {head}): it was made by a newer kb (version {manifest.kb_version}); "
            "restore it with that version"
        )
    return True


def restore_backup(url: URL, file: Path, *, force: bool = False) -> RestoreResult:
    """Blocking: restore ``file`` into the database at ``url``; see the module docstring."""
    started = time.perf_counter()
    manifest = read_manifest(file)
    needs_upgrade = check_revision(manifest)
    runtime_role = _runtime_role()
    with psycopg.connect(to_libpq_dsn(url), autocommit=True) as conn:
        _refuse_if_in_use(conn, url)
        existing = schema_tables(conn)
        if existing and not force:
            raise RestoreRefused(
                f"the database at {describe(url)} is not empty ({len(existing)} tables): "
                "restore into an empty database, or pass --force to replace its contents"
            )
        if existing:
            log.warning("--force: dropping the %d tables of %s", len(existing), describe(url))
            _empty_schema(conn)
        if runtime_role:
            conn.execute(runtime_role[1])
    with tempfile.TemporaryDirectory(prefix=".kb-restore-") as tmp:
        dump = _extract_dump(file, Path(tmp))
        listing = Path(tmp) / "restore.list"
        listing.write_text(_without_default_acls(pgtools.run("pg_restore", ["--list", str(dump)])))
        pgtools.run(
            "pg_restore",
            [
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                f"--use-list={listing}",
                str(dump),
            ],
            url,
        )
    with psycopg.connect(to_libpq_dsn(url), autocommit=True) as conn:
        if runtime_role:
            _default_privileges(conn, runtime_role[0])
        counts = row_counts(conn)
    if counts != manifest.row_counts:
        differ = sorted(
            t
            for t in set(counts) | set(manifest.row_counts)
            if counts.get(t) != manifest.row_counts.get(t)
        )
        raise BackupError(f"restored row counts differ from the backup's in: {', '.join(differ)}")
    with psycopg.connect(to_libpq_dsn(url), autocommit=True) as conn:
        _restart_change_log(conn)
    return RestoreResult(manifest, counts, needs_upgrade, time.perf_counter() - started)


def _restart_change_log(conn: psycopg.Connection[Any]) -> None:
    """Empty the documents change log (migration 0011), its horizon at this server's next
    transaction. Its rows carry transaction ids of the server the backup was taken on,
    which mean nothing here (this server may not have reached them yet, and would then
    count them as changes made after any count it takes); nothing cached the restored
    counts, so nothing needs them."""
    if "document_changes_horizon" not in schema_tables(conn):
        return  # a backup from before the change log: `kb db upgrade` creates it empty
    with conn.transaction():
        conn.execute("TRUNCATE document_changes")
        conn.execute(
            "UPDATE document_changes_horizon SET horizon = pg_snapshot_xmax(pg_current_snapshot())"
        )


def _refuse_if_in_use(conn: psycopg.Connection[Any], url: URL) -> None:
    """Other sessions on the database (a running kb serve or kb worker) would block the drop
    for as long as they run, or read a half-restored knowledge base: refuse instead."""
    rows = conn.execute(
        "SELECT coalesce(nullif(application_name, ''), 'unnamed'), count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    if rows:
        sessions = ", ".join(f"{n} x {name}" for name, n in rows)
        raise RestoreRefused(
            f"the database at {describe(url)} is in use ({sessions}): stop kb serve, kb "
            "worker and other clients before restoring"
        )


def _empty_schema(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    schema = sql.Identifier(str(row[0]))
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))


def _runtime_role() -> tuple[str, str] | None:
    """The runtime role's name and migration 0004's own statement creating it (if missing)
    and letting the login act as it: taken from the migration, so the two cannot drift.
    None for a kb without that migration (its dumps grant nothing to the role)."""
    try:
        module = importlib.import_module(RUNTIME_ROLE_MIGRATION)
    except ModuleNotFoundError:
        return None
    return str(module.ROLE), str(module.CREATE_ROLE)


def _without_default_acls(listing: str) -> str:
    return "".join(line + "\n" for line in listing.splitlines() if " DEFAULT ACL " not in line)


def _default_privileges(conn: psycopg.Connection[Any], name: str) -> None:
    # As migration 0004 grants them, for the login that now owns the schema.
    role = sql.Identifier(name)
    conn.execute(
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(role)
    )
    conn.execute(
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}"
        ).format(role)
    )


def _extract_dump(file: Path, into: Path) -> Path:
    with tarfile.open(file, mode="r:") as tar:
        member = tar.getmember(DUMP)
        if not member.isfile():
            raise BackupError(f"{file}: {DUMP} is not a regular file")
        source = tar.extractfile(member)
        assert source is not None
        target = into / DUMP
        with source, target.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    return target


__all__ = ["RestoreRefused", "RestoreResult", "check_revision", "read_manifest", "restore_backup"]
