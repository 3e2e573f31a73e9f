"""Discovery of connector kinds through two entry-point groups.

A company adds its own kind by publishing a distribution with::

    [project.entry-points."kb.connectors"]
    wiki = "acme_kb.wiki:WikiConnector"

    [project.entry-points."kb.connector_configs"]   # optional, recommended
    wiki = "acme_kb.wiki_config:WikiSourceConfig"

where ``WikiConnector.config_model`` is a :class:`~connectors.config.SourceConfigBase`
subclass with ``kind: Literal["wiki"]``.

Validating settings needs only the config models, so :func:`parse_source_config` loads them
from ``kb.connector_configs`` and never imports an implementation (parsers, drivers) just to
read a configuration. A kind that publishes no config entry point falls back to loading
its connector class. Implementations load on first use (:func:`connector_class`).
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from connectors.config import SourceConfigBase

ENTRY_POINT_GROUP = "kb.connectors"
CONFIG_ENTRY_POINT_GROUP = "kb.connector_configs"

log = logging.getLogger(__name__)


class ConnectorClass(Protocol):
    """What the registry needs from a connector class: its kind and config model."""

    kind: str
    config_model: type[SourceConfigBase]


@cache
def _load() -> tuple[dict[str, ConnectorClass], dict[str, str]]:
    found: dict[str, ConnectorClass] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls: ConnectorClass = ep.load()
        except Exception as exc:
            # One broken plugin must not take the others down; asking for it names the cause.
            log.error("connector kind %r failed to load from %s: %r", ep.name, ep.value, exc)
            broken[ep.name] = f"{exc.__class__.__name__}: {exc}"
            continue
        found[cls.kind] = cls
    return found, broken


def connector_classes() -> dict[str, ConnectorClass]:
    """Every installed connector kind that loads, once per process."""
    return _load()[0]


def known_kinds() -> list[str]:
    """Kinds installed, by entry-point name: nothing is imported to list them."""
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names | set(_config_entry_points()))


@cache
def _config_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=CONFIG_ENTRY_POINT_GROUP)}


@cache
def config_model(kind: str) -> type[SourceConfigBase]:
    """The configuration model of ``kind``, without importing its implementation if possible."""
    ep = _config_entry_points().get(kind)
    if ep is None:
        return connector_class(kind).config_model
    try:
        model = ep.load()
    except Exception as exc:
        log.error("config model of kind %r failed to load from %s: %r", kind, ep.value, exc)
        raise ValueError(
            f"source kind {kind!r} is installed but its configuration failed to load "
            f"({exc.__class__.__name__}: {exc})"
        ) from None
    if not (isinstance(model, type) and issubclass(model, SourceConfigBase)):
        raise ValueError(f"source kind {kind!r}: {ep.value} is not a SourceConfigBase subclass")
    return model


def connector_class(kind: str) -> ConnectorClass:
    classes, broken = _load()
    if kind in broken:
        raise ValueError(f"source kind {kind!r} is installed but failed to load ({broken[kind]})")
    if kind not in classes:
        raise ValueError(f"unknown source kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    return classes[kind]


def parse_source_config(raw: Any) -> SourceConfigBase:
    """Validate one source's configuration with the model of its ``kind``.

    Used as a pydantic ``BeforeValidator`` so errors carry the field path.
    """
    if isinstance(raw, SourceConfigBase):
        return raw
    if not isinstance(raw, dict):
        raise ValueError("each source must be a mapping with at least 'name' and 'kind'")
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"missing 'kind'; known kinds: {', '.join(known_kinds())}")
    if kind not in known_kinds():
        raise ValueError(f"unknown source kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    model = config_model(kind)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # Re-raise as ValueError with paths so the outer settings error names the field.
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
        raise ValueError("; ".join(parts)) from None


def dump_source_config(config: BaseModel) -> dict[str, Any]:
    return config.model_dump(mode="json")


__all__ = [
    "CONFIG_ENTRY_POINT_GROUP",
    "ENTRY_POINT_GROUP",
    "ConnectorClass",
    "config_model",
    "connector_class",
    "connector_classes",
    "dump_source_config",
    "known_kinds",
    "parse_source_config",
]
