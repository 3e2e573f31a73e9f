"""`kb backup` / `kb restore` round trips with real processes, databases and embeddings.

A knowledge base is populated (documents and chunks embedded by the real model, a policy
rule, an API key), backed up with `kb backup`, restored with `kb restore` into a database
that has never seen it, and compared: row counts per table, a policy explanation, search
results (same documents, same order) and the runtime role's privileges on the audit log.
Two deployments: the embedded server under KB_HOME on both sides, and DATABASE_URL on
both sides (a second embedded PostgreSQL stands in for the external server: the machine's
PostgreSQL on 127.0.0.1:5432 has no pgvector).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.db.embedded import EmbeddedPostgres
from server.embeddings.base import Embedder
from server.ops.backup import row_counts
from server.ops.restore import RUNTIME_ROLE_MIGRATION
from server.search import SearchQuery
from server.settings import Settings
from tests.search.conftest import ALL, ENG, company_docs
from tests.search.corpus import acl_filter, insert_documents, insert_sources, open_service

KB = str(Path(sys.executable).parent / "kb")
QUERIES = ["how do backups work", "what to do when production is down", "travel expenses"]
ALICE = ("user:alice", ENG, ALL)


def run_kb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k != "DATABASE_URL"}
    return subprocess.run(
        [KB, *args], capture_output=True, text=True, env={**base, **env}, timeout=300
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def populate(env: dict[str, str], dsn: str, embedder: Embedder) -> str:
    """Sources, documents, chunks, a rule and an API key; returns a document id."""
    insert_sources(
        dsn, {"wiki": ("files", "Wiki"), "hr": ("files", "HR"), "finance": ("sql", "Finance")}
    )
    docs = company_docs()
    insert_documents(dsn, docs, embedder)
    ok(run_kb(env, "policy", "add", "rule", "group:eng", "collection:eng", "--comment", "eng"))
    ok(run_kb(env, "policy", "add", "rule", "user:alice", "collection:eng/platform", "--deny"))
    ok(run_kb(env, "keys", "create", "indexer", "--days", "30"))
    return str(next(d.id for d in docs if d.title.startswith("Database backup")))


async def observe(env: dict[str, str], dsn: str, doc: str, embedder: Embedder) -> dict[str, Any]:
    """What an operator and a user see: counts, an explanation, search results."""
    with psycopg.connect(dsn) as conn:
        counts = row_counts(conn)
        keys = conn.execute("SELECT name, key_prefix, key_hash FROM api_keys ORDER BY 1").fetchall()
    audit = audit_rows(dsn)  # before this function's own explain call
    why = run_kb(env, "policy", "explain", "--as", ",".join(ALICE), "--doc", doc, "--json")
    explain = json.loads(ok(why))
    settings = Settings(home=env.get("KB_HOME", "/nonexistent"), database={"url": dsn})
    searches = {}
    async with open_service(settings, embedder) as svc:
        for q in QUERIES:
            result = await svc.search(acl_filter(*ALICE), SearchQuery(q))
            searches[q] = [(str(h.document_id), h.chunk_id) for h in result.hits]
    return {
        "counts": counts,
        "audit": audit,
        "keys": keys,
        "explain": explain,
        "searches": searches,
    }


def backup_and_restore(
    source_env: dict[str, str], target_env: dict[str, str], file: Path
) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = ok(run_kb(source_env, "backup", str(file)))
    t1 = time.perf_counter()
    assert "backup written" in out
    restored = ok(run_kb(target_env, "restore", str(file)))
    assert "row counts match the backup" in restored
    t2 = time.perf_counter()
    print(f"backup {t1 - t0:.1f} s, restore {t2 - t1:.1f} s, {file.stat().st_size} bytes")
    return t1 - t0, t2 - t1


def audit_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        query = "SELECT id, at, method, arguments FROM audit_log ORDER BY id"
        return conn.execute(query).fetchall()


def assert_same_knowledge_base(
    before: dict[str, Any], after: dict[str, Any], source_audit: list[tuple[Any, ...]]
) -> None:
    # The audit log differs by the calls made in between (explain, backup, restore): it is
    # compared row by row instead: the source's rows as of the backup, then the restore.
    # The documents change log (migration 0011) restarts empty: its transaction ids were
    # the other server's.
    log = "document_changes"
    assert after["counts"].get(log, 0) == 0 and before["counts"].get(log, 1) > 0
    assert {**after["counts"], "audit_log": 0, log: 0} == {
        **before["counts"],
        "audit_log": 0,
        log: 0,
    }
    assert source_audit[-1][2] == "backup"
    assert after["audit"][: len(source_audit)] == source_audit
    assert after["audit"][len(source_audit)][2] == "restore"
    assert before["counts"]["chunks"] > 0 and before["counts"]["policy_rules"] >= 2
    assert after["keys"] == before["keys"]  # hashes, as stored
    assert after["explain"] == before["explain"]
    assert after["explain"]["allowed"] is False  # the deny rule came along
    assert after["searches"] == before["searches"]
    assert all(after["searches"].values())


def assert_runtime_role_still_append_only(dsn: str) -> None:
    if importlib.util.find_spec(RUNTIME_ROLE_MIGRATION) is None:
        return  # a kb without the runtime role (migration 0004): nothing to keep
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE kb_runtime")
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")


@pytest.fixture
def embedded_home(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A KB_HOME with a migrated embedded database; yields (home, libpq URI)."""
    home = tmp_path / "home-a"
    ok(run_kb({"KB_HOME": str(home)}, "db", "upgrade"))
    server = EmbeddedPostgres(home)
    uri = server.start()
    yield home, uri
    server.stop()


@pytest.mark.anyio
async def test_round_trip_on_the_embedded_database(
    embedded_home: tuple[Path, str], tmp_path: Path, embedder: Embedder
) -> None:
    home_a, dsn_a = embedded_home
    env_a = {"KB_HOME": str(home_a)}
    doc = populate(env_a, dsn_a, embedder)
    before = await observe(env_a, dsn_a, doc, embedder)

    home_b = tmp_path / "home-b"  # never used: the restore starts its embedded server
    env_b = {"KB_HOME": str(home_b)}
    backup_and_restore(env_a, env_b, tmp_path / "kb.backup")
    source_audit = audit_rows(dsn_a)
    server_b = EmbeddedPostgres(home_b)
    dsn_b = server_b.start()
    try:
        after = await observe(env_b, dsn_b, doc, embedder)
        assert_same_knowledge_base(before, after, source_audit)
        assert_runtime_role_still_append_only(dsn_b)
    finally:
        server_b.stop()


@pytest.fixture
def external_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A second PostgreSQL server reached only through DATABASE_URL."""
    server = EmbeddedPostgres(tmp_path / "external", "kb_restored")
    server.start()
    yield server
    server.stop()


@pytest.mark.anyio
async def test_round_trip_through_database_url_and_refusing_to_overwrite(
    fresh_database: str, external_server: EmbeddedPostgres, tmp_path: Path, embedder: Embedder
) -> None:
    env_a = {"DATABASE_URL": fresh_database, "KB_HOME": str(tmp_path / "a")}
    doc = populate(env_a, fresh_database, embedder)
    before = await observe(env_a, fresh_database, doc, embedder)

    dsn_b = external_server.uri("kb_restored")
    env_b = {"DATABASE_URL": dsn_b, "KB_HOME": str(tmp_path / "b")}
    file = tmp_path / "kb.backup"
    backup_and_restore(env_a, env_b, file)
    source_audit = audit_rows(fresh_database)
    after = await observe(env_b, dsn_b, doc, embedder)
    assert_same_knowledge_base(before, after, source_audit)
    assert_runtime_role_still_append_only(dsn_b)

    # A second restore into the now populated database is refused and changes nothing.
    refused = run_kb(env_b, "restore", str(file))
    assert refused.returncode == 1
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    with psycopg.connect(dsn_b) as conn:
        assert {**row_counts(conn), "audit_log": 0} == {**after["counts"], "audit_log": 0}
        row = conn.execute(
            "SELECT method, outcome, error FROM audit_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert row is not None and row[:2] == ("restore", "error") and "not empty" in row[2]
        # Someone's new row, which --force must discard.
        conn.execute("INSERT INTO sources (name, kind, config) VALUES ('late', 'files', '{}')")
    with psycopg.connect(dsn_b, application_name="kb-serve-still-running"):
        busy = run_kb(env_b, "restore", str(file), "--force")
    assert busy.returncode == 1 and "in use (1 x kb-serve-still-running)" in busy.stderr
    forced = ok(run_kb(env_b, "restore", str(file), "--force"))
    assert "row counts match the backup" in forced
    with psycopg.connect(dsn_b) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sources")}
    assert "late" not in names and {"wiki", "hr"} <= names


def _rewrite_manifest(file: Path, out: Path, **changes: Any) -> None:
    with tarfile.open(file) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            assert data is not None
            body = data.read()
            if member.name == "manifest.json":
                body = json.dumps({**json.loads(body), **changes}).encode()
                member.size = len(body)
            dst.addfile(member, io.BytesIO(body))


def test_backups_from_a_newer_kb_and_other_files_are_refused(
    fresh_database: str, external_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    env_a = {"DATABASE_URL": fresh_database, "KB_HOME": str(tmp_path / "a")}
    file = tmp_path / "kb.backup"
    ok(run_kb(env_a, "backup", str(file)))
    dsn_b = external_server.uri("kb_restored")
    env_b = {"DATABASE_URL": dsn_b, "KB_HOME": str(tmp_path / "b")}

    newer = tmp_path / "newer.backup"
    _rewrite_manifest(file, newer, schema_revision="0099_from_the_future", kb_version="9.0")
    out = run_kb(env_b, "restore", str(newer))
    assert out.returncode == 1 and "newer kb" in out.stderr and "Traceback" not in out.stderr

    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    out = run_kb(env_b, "restore", str(junk))
    assert out.returncode == 1 and "not a readable kb backup" in out.stderr

    with psycopg.connect(dsn_b) as conn:  # nothing was written
        assert row_counts(conn) == {}


def test_a_backup_before_an_upgrade_restores_then_upgrades(
    external_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    """The upgrade path of docs/operations.md on a server that never saw kb_runtime: back up
    a database at the previous revision, restore it elsewhere, then `kb db upgrade`."""
    with psycopg.connect(external_server.admin_uri, autocommit=True) as conn:
        conn.execute("CREATE DATABASE previous")
        assert not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'kb_runtime'").fetchone()
    env_a = {"DATABASE_URL": external_server.uri("previous"), "KB_HOME": str(tmp_path / "a")}
    ok(run_kb(env_a, "db", "upgrade", "0003_bm25"))
    with psycopg.connect(external_server.uri("previous")) as conn:
        conn.execute("INSERT INTO sources (name, kind, config) VALUES ('wiki', 'files', '{}')")
    file = tmp_path / "previous.kbk"
    ok(run_kb(env_a, "backup", str(file)))  # before the runtime role exists anywhere

    env_b = {"DATABASE_URL": external_server.uri("kb_restored"), "KB_HOME": str(tmp_path / "b")}
    restored = ok(run_kb(env_b, "restore", str(file)))
    assert "run `kb db upgrade`" in restored
    refused = run_kb(env_b, "sources", "list")  # the separate migrate step is still required
    assert refused.returncode != 0 and "kb db upgrade" in refused.stderr
    ok(run_kb(env_b, "db", "upgrade"))
    assert "(head)" in ok(run_kb(env_b, "db", "current"))
    assert "wiki" in ok(run_kb(env_b, "sources", "list"))
    dsn_b = external_server.uri("kb_restored")
    methods = [r[2] for r in audit_rows(dsn_b)]
    assert methods[methods.index("backup") + 1] == "restore"
    with psycopg.connect(dsn_b) as conn:
        conn.execute("SET ROLE kb_runtime")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")


def test_backup_while_writes_go_on_is_one_consistent_snapshot(
    fresh_database: str, external_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Rows committed while `kb backup` runs: the manifest's counts and the dump come from
    one snapshot, so the restore's count check passes (counted apart, they would differ)."""
    stop = threading.Event()
    written = 0

    def writer() -> None:
        nonlocal written
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO sources (name, kind, config) VALUES (%s, 'files', '{}')",
                    (f"w{written}",),
                )
                written += 1
                time.sleep(0.002)

    env_a = {"DATABASE_URL": fresh_database, "KB_HOME": str(tmp_path / "a")}
    file = tmp_path / "busy.kbk"
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        ok(run_kb(env_a, "backup", str(file)))
    finally:
        stop.set()
        thread.join()
    env_b = {"DATABASE_URL": external_server.uri("kb_restored"), "KB_HOME": str(tmp_path / "b")}
    assert "row counts match the backup" in ok(run_kb(env_b, "restore", str(file)))
    with psycopg.connect(external_server.uri("kb_restored")) as conn:
        row = conn.execute("SELECT count(*) FROM sources").fetchone()
    assert row is not None and 0 < row[0] < written  # writes went on before and after
