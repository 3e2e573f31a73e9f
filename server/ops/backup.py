"""``kb backup``: the whole knowledge base in one file.

The file is a tar archive of two members:

- ``manifest.json``: format, kb version, schema revision, creation time, row counts per
  table, the pg_dump version and the effective configuration with secrets masked (a
  restore shows it; it never becomes the running configuration by itself);
- ``database.dump``: a ``pg_dump --format=custom`` archive of the database: policies and
  their versions, sources and cursors, documents, chunks with embeddings, the BM25 index,
  API keys (hashes only, as stored), the audit log and the job queue.

The row counts and the dump read one snapshot: a REPEATABLE READ transaction exports it
and pg_dump joins it with ``--snapshot``, so the counts in the manifest are exactly what
the dump holds even while the server keeps writing. A restore checks them.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from server.db.engine import to_libpq_dsn
from server.ops import pgtools
from server.ops.pgtools import BackupError

FORMAT = "kb-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"


@dataclass
class Manifest:
    kb_version: str
    schema_revision: str | None
    created_at: str
    row_counts: dict[str, int]
    pg_dump_version: str
    settings: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise BackupError("not a kb backup (its manifest names another format)")
            if data.get("format_version") != FORMAT_VERSION:
                raise BackupError(
                    f"backup format version {data.get('format_version')} is not supported "
                    f"(this kb reads version {FORMAT_VERSION})"
                )
            return cls(
                kb_version=str(data["kb_version"]),
                schema_revision=data["schema_revision"],
                created_at=str(data["created_at"]),
                row_counts={str(k): int(v) for k, v in data["row_counts"].items()},
                pg_dump_version=str(data["pg_dump_version"]),
                settings=dict(data.get("settings") or {}),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"the backup's manifest is unreadable ({exc})") from None


@dataclass
class BackupResult:
    file: Path
    manifest: Manifest
    size_bytes: int
    seconds: float


def schema_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """The tables of the knowledge base's schema (the connection's current schema)."""
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in schema_tables(conn):
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def _revision(conn: psycopg.Connection[Any], tables: dict[str, int]) -> str | None:
    if "alembic_version" not in tables:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def create_backup(
    url: URL, file: Path, *, kb_version: str, settings: dict[str, Any]
) -> BackupResult:
    """Blocking: dump the database at ``url`` into ``file`` (written atomically, mode 0600)."""
    started = time.perf_counter()
    file = file.resolve()
    if file.is_dir():
        raise BackupError(f"{file} is a directory: name the backup file")
    if not file.parent.is_dir():
        raise BackupError(f"{file.parent} does not exist")
    with psycopg.connect(to_libpq_dsn(url)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = str(row[0])
        counts = row_counts(conn)
        if "alembic_version" not in counts:
            raise BackupError("the database has no kb schema: nothing to back up")
        manifest = Manifest(
            kb_version=kb_version,
            schema_revision=_revision(conn, counts),
            created_at=datetime.now(UTC).isoformat(),
            row_counts=counts,
            pg_dump_version=pgtools.version("pg_dump"),
            settings=settings,
        )
        with tempfile.TemporaryDirectory(prefix=".kb-backup-", dir=file.parent) as tmp:
            dump = Path(tmp) / DUMP
            # The exporting transaction must stay open while pg_dump imports its snapshot.
            args = ["--format=custom", f"--snapshot={snapshot}", f"--file={dump}"]
            pgtools.run("pg_dump", args, url)
            conn.rollback()
            partial = Path(tmp) / "backup.tar"
            _write_archive(partial, manifest, dump)
            partial.replace(file)
    return BackupResult(file, manifest, file.stat().st_size, time.perf_counter() - started)


def _write_archive(path: Path, manifest: Manifest, dump: Path) -> None:
    # Documents, key hashes and the audit log are inside: readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w") as tar:
            body = json.dumps(asdict(manifest), indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            info.mtime = int(time.time())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(body))
            tar.add(dump, arcname=DUMP)
        raw.flush()
        os.fsync(raw.fileno())


__all__ = ["DUMP", "MANIFEST", "BackupResult", "Manifest", "create_backup", "row_counts"]
