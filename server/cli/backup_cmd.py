"""`kb backup` and `kb restore`: the whole knowledge base in one file, and back.

Both run as the CLI operator and leave an audit row: a backup records itself before the
dump (so the backup holds its own row; no row, no backup), a restore records itself in the
restored database once its audit log exists again (a failed restore is recorded there if
the table is there, and always in the error log).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from server.cli.common import State, console, fail, handle_errors, run_async
from server.db.engine import DatabaseTarget

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from policies.capability import AdminCaller
    from server.settings import Settings

log = logging.getLogger(__name__)


class _AsLogin(DatabaseTarget):
    """The database acting as the login itself, not the runtime role."""

    @property
    def runtime_url(self) -> URL:
        return self.url


def _audit_target(target: DatabaseTarget, schema_current: bool) -> DatabaseTarget:
    """Where the audit row is written from: the runtime role normally; the login itself for
    a schema older than this kb's (before migration 0004 the runtime role may not exist, or
    hold no grants, and a backup before `kb db upgrade` must still be possible)."""
    return target if schema_current else _AsLogin(target.url)


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB" if n >= 1_048_576 else f"{n / 1024:.1f} KiB"


@handle_errors
def backup(
    file: Path = typer.Argument(..., help="The backup file to write (a tar archive)."),
) -> None:
    """Back up the knowledge base into FILE: policies, sources and cursors, documents, chunks
    and embeddings, API keys (hashes), the audit log, and the configuration, secrets masked.

    Uses pg_dump from the embedded PostgreSQL 18 binaries, for the embedded database and for
    DATABASE_URL alike. The file is written atomically and readable by its owner only.
    """
    from server import __version__
    from server.cli.operator import offline_admin
    from server.db import migrate
    from server.ops.backup import create_backup
    from server.runtime import prepare_database
    from server.settings import masked_dump
    from server.usecases.operations import audited_operation

    settings = State.settings()
    # An older schema may be backed up (that is what one does before `kb db upgrade`).
    target, _ = prepare_database(settings, check_schema=False)
    try:
        audit_to = _audit_target(target, migrate.is_current(target.url))
        with console.status(f"backing up to {file}"):
            result = run_async(
                audited_operation(
                    settings,
                    audit_to,
                    offline_admin(),
                    method="backup",
                    arguments={"file": str(file.resolve())},
                    run=lambda: create_backup(
                        target.url,
                        file,
                        kb_version=__version__,
                        settings=masked_dump(settings),
                    ),
                )
            )
    finally:
        target.close()
    counts = result.manifest.row_counts
    console.print(
        f"[green]backup written[/] {result.file} ({_size(result.size_bytes)}, "
        f"{result.seconds:.1f} s): schema {result.manifest.schema_revision}, "
        f"{counts.get('documents', 0)} documents, {counts.get('chunks', 0)} chunks, "
        f"{counts.get('audit_log', 0)} audit rows",
        highlight=False,
    )


@handle_errors
def restore(
    file: Path = typer.Argument(..., help="A backup file written by `kb backup`."),
    force: bool = typer.Option(
        False, "--force", help="Replace the contents of a database that is not empty."
    ),
) -> None:
    """Restore FILE (from `kb backup`) into this kb's database, which must be empty.

    A database with tables is refused unless --force, which drops them first. A backup
    from a newer kb is refused; one from an older kb is restored, then run `kb db upgrade`.
    Stop `kb serve` and `kb worker` first: a database other sessions use is refused.
    """
    from server.cli.operator import offline_admin
    from server.db import migrate
    from server.ops.restore import read_manifest, restore_backup
    from server.runtime import prepare_database

    settings = State.settings()
    manifest = read_manifest(file)  # a file that is no backup fails before any database work
    target, _ = prepare_database(settings, check_schema=False)
    admin = offline_admin()
    arguments: dict[str, Any] = {
        "file": str(file.resolve()),
        "force": force,
        "backup_created_at": manifest.created_at,
        "backup_kb_version": manifest.kb_version,
        "schema_revision": manifest.schema_revision,
    }
    try:
        with console.status(f"restoring {file}"):
            try:
                result = restore_backup(target.url, file, force=force)
            except Exception as exc:
                log.error("restore of %s failed: %s", file, exc)
                with contextlib.suppress(Exception):
                    audit_to = _audit_target(target, migrate.is_current(target.url))
                    run_async(_record(settings, audit_to, admin, arguments, exc))
                raise
            try:
                audit_to = _audit_target(target, not result.needs_upgrade)
                run_async(_record(settings, audit_to, admin, arguments, None))
            except Exception as exc:
                log.exception("restore of %s succeeded but its audit row failed", file)
                raise fail(
                    f"{file} was restored, but its audit row could not be written "
                    f"({exc.__class__.__name__}); see the log"
                ) from None
    finally:
        target.close()
    counts = result.row_counts
    console.print(
        f"[green]restored[/] {file} ({result.seconds:.1f} s): backup of "
        f"{manifest.created_at} by kb {manifest.kb_version}, "
        f"{counts.get('documents', 0)} documents, {counts.get('chunks', 0)} chunks, "
        f"{sum(counts.values())} rows; row counts match the backup",
        highlight=False,
    )
    if result.needs_upgrade:
        console.print(
            f"[yellow]the backup's schema ({manifest.schema_revision}) is older than this kb's:"
            " run `kb db upgrade` before `kb serve`[/]",
            highlight=False,
        )


async def _record(
    settings: Settings,
    target: DatabaseTarget,
    admin: AdminCaller,
    arguments: dict[str, Any],
    error: Exception | None,
) -> None:
    from server.audit.recorder import AuditRecorder, error_text, outcome_of
    from server.db.engine import Database

    db = Database.open(target, settings)
    try:
        caller = admin.caller
        await AuditRecorder(db, settings.audit).record(
            principals=caller.principals,
            client_id=caller.client_id,
            transport=caller.transport,
            method="restore",
            arguments=arguments,
            outcome="ok" if error is None else outcome_of(error),
            error=None if error is None else error_text(error),
        )
    finally:
        await db.dispose()


__all__ = ["backup", "restore"]
