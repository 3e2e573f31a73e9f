"""Sources, syncs and ingest runs (admin only): the use cases behind ``/admin/sources``,
``/admin/jobs``, ``kb sources``, ``kb sync`` and ``kb jobs``.

The catalog services are blocking (sync engine, connector checks); they run on a worker
thread so the event loop never waits. Adding and removing a source write their audit row
on the catalog's own connection, inside the change's transaction (``write_sync``), so a
failed audit write leaves no source added or removed. Queueing a sync spans the job
queue's own connection: its row is written in its own transaction once the job is queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine

from policies.capability import AdminCaller
from server.usecases.errors import Conflict

if TYPE_CHECKING:
    from server.runtime import Runtime

T = TypeVar("T")


async def _blocking(rt: Runtime, work: Callable[[Engine], T]) -> T:
    """Run a catalog call on a thread with an engine of its own, disposed after."""
    from server.db.engine import make_sync_engine

    def go() -> T:
        engine = make_sync_engine(rt.target, rt.settings)
        try:
            return work(engine)
        finally:
            engine.dispose()

    return await asyncio.to_thread(go)


def definition_for_audit(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The source definition as recorded: the scrub step withholds credential values."""
    return {"definition": dict(raw)}


async def list_sources(rt: Runtime, admin: AdminCaller) -> list[dict[str, Any]]:
    from server.ingest import catalog

    async with rt.audit.call(admin.caller, method="sources.list"):
        return await _blocking(rt, lambda e: catalog.list_sources(e, rt.settings))


async def get_source(rt: Runtime, admin: AdminCaller, name: str) -> dict[str, Any]:
    from server.ingest import catalog

    async with rt.audit.call(admin.caller, method="sources.get", target=name):
        return await _blocking(rt, lambda e: catalog.get_source(e, rt.settings, name))


async def add_source(
    rt: Runtime, admin: AdminCaller, definition: Mapping[str, Any], *, replace: bool = False
) -> dict[str, Any]:
    from server.ingest import catalog

    name = definition.get("name")
    origin = "cli" if admin.caller.transport == "cli" else "api"
    async with rt.audit.failures(
        admin.caller,
        method="sources.add",
        target=name if isinstance(name, str) else None,
        arguments={**definition_for_audit(definition), "replace": replace},
    ) as scope:
        return await _blocking(
            rt,
            lambda e: catalog.add_source(
                e, rt.settings, definition, origin=origin, replace=replace, audit=scope.write_sync
            ),
        )


async def remove_source(rt: Runtime, admin: AdminCaller, name: str) -> None:
    from server.ingest import catalog

    async with rt.audit.failures(
        admin.caller, method="sources.remove", target=name, arguments={"name": name}
    ) as scope:
        await _blocking(
            rt, lambda e: catalog.remove_source(e, rt.settings, name, audit=scope.write_sync)
        )


async def sync_source(rt: Runtime, admin: AdminCaller, name: str) -> tuple[int, int]:
    """Queue a sync; returns (run id, job id)."""
    from server.ingest.service import SyncBusy
    from server.jobs.enqueue import SyncAlreadyQueued, enqueue_sync

    trigger = "cli" if admin.caller.transport == "cli" else "api"
    async with rt.audit.call(
        admin.caller, method="sources.sync", target=name, arguments={"name": name}
    ) as rec:
        try:
            queued = await _blocking(
                rt, lambda e: enqueue_sync(rt.settings, rt.target, e, name, trigger=trigger)
            )
        except (SyncAlreadyQueued, SyncBusy) as exc:
            raise Conflict(exc.message) from None
        rec.result.update({"run_id": queued.run_id, "job_id": queued.job_id})
    return queued.run_id, queued.job_id


async def sync_here(
    rt: Runtime, admin: AdminCaller, name: str, *, full: bool, run: Callable[[Engine], T]
) -> T:
    """Run a sync in this process (``kb sync --inline``): ``run`` does the blocking work."""
    async with rt.audit.call(
        admin.caller,
        method="sources.sync",
        target=name,
        arguments={"name": name, "inline": True, "full": full},
    ):
        return await _blocking(rt, run)


async def list_jobs(
    rt: Runtime, admin: AdminCaller, *, source: str | None, limit: int
) -> list[dict[str, Any]]:
    from server.ingest import catalog

    async with rt.audit.call(
        admin.caller, method="jobs.list", arguments={"source": source, "limit": limit}
    ):
        return await _blocking(rt, lambda e: catalog.list_runs(e, source=source, limit=limit))


async def get_job(rt: Runtime, admin: AdminCaller, run_id: int) -> dict[str, Any]:
    from server.ingest import catalog

    async with rt.audit.call(admin.caller, method="jobs.get", target=str(run_id)):
        return await _blocking(rt, lambda e: catalog.get_run(e, run_id))


async def set_enabled(rt: Runtime, admin: AdminCaller, name: str, enabled: bool) -> dict[str, Any]:
    """Enable or disable a source: its stored definition with ``enabled`` changed, replaced
    through :func:`add_source` (validated, checked against the source and audited there)."""
    current = await get_source(rt, admin, name)
    definition = {**current["config"], "enabled": enabled}
    return await add_source(rt, admin, definition, replace=True)


__all__ = [
    "add_source",
    "get_job",
    "get_source",
    "list_jobs",
    "list_sources",
    "remove_source",
    "set_enabled",
    "sync_here",
    "sync_source",
]
