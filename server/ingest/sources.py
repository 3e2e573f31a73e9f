"""Sources as the ingestion side sees them: configuration, storage, and connectors.

A source is defined either in the configuration file (``origin = "config"``; the file is
authoritative and the row is refreshed at the start of every sync) or added at run time
with ``kb sources add`` / ``POST /admin/sources`` (``origin = "cli"`` or ``"api"``; the
row is authoritative). Either way the stored configuration holds no secrets: credentials
stay ``${VAR}`` references that the connector expands from the environment when it
connects. A literal password is masked when a configured source is stored and refused
when a source is added at run time (it could not be masked and still work).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection

from connectors.base import Connector, ConnectorContext, ParseGuard
from connectors.config import SourceConfigBase
from connectors.path_fence import PathFence
from connectors.registry import connector_class, parse_source_config
from connectors.zip_limits import ZipLimits
from core.errors import ConfigError, InvalidRequest, NotFound
from server.ingest import repository
from server.settings import Settings

SECRET_MASK = "********"  # noqa: S105 (the mask, not a password)
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^/:@\s]*):(?P<pw>[^@/\s]*)@")
_SECRET_KEYS = ("password", "passwd", "secret", "token", "api_key", "private_key", "credentials")


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in {"key", "pwd"} or any(k.endswith(s) for s in _SECRET_KEYS)


def literal_secrets(value: Any, path: str = "") -> list[str]:
    """Dotted paths of values that hold a literal credential instead of a ${VAR} reference."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if _is_secret_key(str(k)) and isinstance(v, str) and v and not _ENV_REFERENCE.match(v):
                found.append(sub)
            else:
                found.extend(literal_secrets(v, sub))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.extend(literal_secrets(v, f"{path}[{i}]"))
    elif isinstance(value, str):
        m = _URL_PASSWORD.match(value)
        if m and m.group("pw") and not _ENV_REFERENCE.match(m.group("pw")):
            found.append(path)
    return found


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str) and value:
        if _is_secret_key(key) and not _ENV_REFERENCE.match(value):
            return SECRET_MASK
        m = _URL_PASSWORD.match(value)
        if m and m.group("pw") and not _ENV_REFERENCE.match(m.group("pw")):
            return f"{m.group('head')}:{SECRET_MASK}@" + value[m.end() :]
    return value


def stored_config(config: SourceConfigBase) -> dict[str, Any]:
    """The configuration as stored and shown: JSON, ${VAR} kept, literal secrets masked."""
    data = config.model_dump(mode="json")
    masked: dict[str, Any] = _masked(data)
    return masked


def parse_config(raw: Mapping[str, Any]) -> SourceConfigBase:
    """Validate a source definition with its kind's model; ConfigError names the field."""
    try:
        return parse_source_config(dict(raw))
    except ValueError as exc:
        raise ConfigError(f"invalid source definition: {exc}") from None


def is_runtime_source(config: SourceConfigBase, settings: Settings) -> bool:
    """Added over REST or the CLI rather than written in the configuration file."""
    return settings.source(config.name) is None


def connector_context(
    settings: Settings, *, runtime: bool = False, parse_guard: ParseGuard | None = None
) -> ConnectorContext:
    """What a connector may use. Sources added at run time (``runtime``) are fenced: they
    see only the environment variables on ``ingest.runtime_source_env`` and read files
    only under ``ingest.runtime_file_roots``, never the data directory."""
    ingest = settings.ingest
    environ: dict[str, str] = dict(os.environ)
    fence: PathFence | None = None
    note = ""
    if runtime:
        environ = {k: v for k, v in environ.items() if k in set(ingest.runtime_source_env)}
        fence = PathFence.of(
            [settings.resolve(p) for p in ingest.runtime_file_roots], [settings.home_dir]
        )
        note = (
            " or not allowed: sources added at run time may reference only the variables "
            "listed in ingest.runtime_source_env"
        )
    return ConnectorContext(
        base_dir=settings.config_dir.resolve(),
        max_file_bytes=ingest.max_file_bytes,
        zip_limits=ZipLimits(ingest.max_uncompressed_bytes, ingest.max_compression_ratio),
        environ=environ,
        fence=fence,
        environ_note=note,
        parse_guard=parse_guard,
    )


def open_connector(
    config: SourceConfigBase, settings: Settings, *, parse_guard: ParseGuard | None = None
) -> Connector:
    context = connector_context(
        settings, runtime=is_runtime_source(config, settings), parse_guard=parse_guard
    )
    cls = cast(Any, connector_class(config.kind))
    connector: Connector = cls(config, context)
    return connector


def upsert_configured_sources(conn: Connection, settings: Settings) -> None:
    """Refresh the rows of every source defined in the configuration file."""
    for config in settings.sources:
        repository.upsert_source(
            conn,
            name=config.name,
            kind=config.kind,
            config=stored_config(config),
            origin="config",
            enabled=config.enabled,
        )


def resolve_config(conn: Connection, settings: Settings, name: str) -> SourceConfigBase:
    """The live configuration of a source: the file's, else the stored row's."""
    configured = settings.source(name)
    if configured is not None:
        return configured
    row = repository.get_source(conn, name)
    if row is None or row.origin == "config":
        # A config-origin row whose definition left the file is an orphan: not syncable.
        raise NotFound(f"no source named {name!r}")
    return parse_config(row.config)


def refuse_literal_secrets(raw: Mapping[str, Any]) -> None:
    paths = literal_secrets(dict(raw))
    if paths:
        raise InvalidRequest(
            "credentials must be environment references such as ${DB_PASSWORD}, "
            f"not literal values (found at: {', '.join(paths)})"
        )


__all__ = [
    "connector_context",
    "is_runtime_source",
    "literal_secrets",
    "open_connector",
    "parse_config",
    "refuse_literal_secrets",
    "resolve_config",
    "stored_config",
    "upsert_configured_sources",
]
