"""Source and run administration shared by ``kb sources``/``kb jobs`` and ``/admin``.

Blocking (sync engine): the CLI calls these directly, the admin API via a worker thread.
Each function returns plain JSON-ready dictionaries so both doors shape the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine

from connectors.config import SourceConfigBase
from core.errors import InvalidRequest, NotFound
from server.ingest import freshness, repository
from server.ingest.issues import failing_view
from server.ingest.runs import run_view
from server.ingest.sources import (
    open_connector,
    parse_config,
    refuse_literal_secrets,
    stored_config,
    upsert_configured_sources,
)
from server.settings import Settings

# Writes the audit row of a change on its connection, before the change commits.
AuditHook = Callable[[Connection], None]


def list_sources(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        upsert_configured_sources(conn, settings)
        rows = repository.list_sources(conn)
        counts = repository.live_document_counts(conn)
        latest = repository.latest_runs(conn)
        fresh = freshness.read_freshness(conn)
    configured = {s.name for s in settings.sources}
    # A config-origin row whose definition left the file stays listed (``in_config_file``
    # false) until removed, so its documents are not forgotten in the index.
    views = [
        _source_view(row, counts.get(row.name, 0), latest.get(row.name), configured) for row in rows
    ]
    for view in views:
        f = fresh.get(view["name"])
        view["freshness"] = f.as_dict() if f is not None else None
    return views


def get_source(engine: Engine, settings: Settings, name: str, *, runs: int = 10) -> dict[str, Any]:
    view = next((s for s in list_sources(engine, settings) if s["name"] == name), None)
    if view is None:
        raise NotFound(f"no source named {name!r}")
    with engine.connect() as conn:
        view["recent_runs"] = [
            run_view(r) for r in repository.list_runs(conn, source=name, limit=runs)
        ]
        row = repository.get_source(conn, name)
    state = row.sync_state if row else {}
    view["sync_state"] = {"cursor": state.get("cursor")}
    view.update(failing_view(state))
    return view


def _source_view(
    row: repository.SourceRow,
    documents: int,
    latest: Mapping[str, Any] | None,
    configured: set[str],
) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "origin": row.origin,
        "enabled": row.enabled,
        "schedule": row.config.get("schedule"),
        "watch": bool(row.config.get("watch", False)),
        "description": row.config.get("description", ""),
        "config": row.config,
        "documents": documents,
        "last_success_at": row.last_success_at.isoformat() if row.last_success_at else None,
        "last_run": run_view(latest) if latest else None,
        "in_config_file": row.name in configured,
        # Documents failing now (until they ingest), not only those of the last run.
        "failing": failing_view(row.sync_state, limit=0)["failing_count"],
    }


def validate_new_source(settings: Settings, raw: Mapping[str, Any]) -> SourceConfigBase:
    """Parse, refuse literal credentials, and check the configuration against the source.

    Raises ConfigError (bad field), InvalidRequest (literal secret) or ConnectorError with the
    source's reason (missing directory, table or column; a query that is not a SELECT).
    Blocking: ``check()`` talks to the source.
    """
    refuse_literal_secrets(raw)
    config = parse_config(raw)
    connector = open_connector(config, settings)
    try:
        connector.check()
    finally:
        connector.close()
    return config


def add_source(
    engine: Engine,
    settings: Settings,
    raw: Mapping[str, Any],
    *,
    origin: str,
    replace: bool = False,
    audit: AuditHook | None = None,
) -> dict[str, Any]:
    """``audit`` writes the audit row on the connection, inside the change's transaction."""
    name = raw.get("name")
    if isinstance(name, str) and settings.source(name) is not None:
        raise InvalidRequest(f"source {name!r} is defined in the configuration file; edit it there")
    config = validate_new_source(settings, raw)
    with engine.begin() as conn:
        existing = repository.get_source(conn, config.name, for_update=True)
        if existing is not None and not replace:
            raise InvalidRequest(f"a source named {config.name!r} already exists")
        if existing is not None and existing.kind != config.kind:
            raise InvalidRequest(
                f"source {config.name!r} is of kind {existing.kind!r}; remove it to change its kind"
            )
        repository.upsert_source(
            conn,
            name=config.name,
            kind=config.kind,
            config=stored_config(config),
            origin=origin,
            enabled=config.enabled,
        )
        if audit is not None:
            audit(conn)
    return get_source(engine, settings, config.name)


def remove_source(
    engine: Engine, settings: Settings, name: str, *, audit: AuditHook | None = None
) -> None:
    """Delete a source with all its documents and chunks."""
    if settings.source(name) is not None:
        raise InvalidRequest(
            f"source {name!r} is defined in the configuration file; remove it there first"
        )
    with engine.begin() as conn:
        if not repository.delete_source(conn, name):
            raise NotFound(f"no source named {name!r}")
        if audit is not None:
            audit(conn)


def list_runs(
    engine: Engine, *, source: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [run_view(r) for r in repository.list_runs(conn, source=source, limit=limit)]


def get_run(engine: Engine, run_id: int, *, failures: int = 1000) -> dict[str, Any]:
    with engine.connect() as conn:
        row = repository.get_run(conn, run_id)
        if row is None:
            raise NotFound(f"no ingest run {run_id}")
        view = run_view(row)
        view["failures"] = [
            {**f, "at": f["at"].isoformat()}
            for f in repository.run_failures(conn, run_id, limit=failures)
        ]
    return view


__all__ = [
    "add_source",
    "get_run",
    "get_source",
    "list_runs",
    "list_sources",
    "remove_source",
    "validate_new_source",
]
