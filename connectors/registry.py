"""Discovery of connector kinds through the ``kb.connectors`` entry-point group.

A company adds its own kind by publishing a distribution with::

    [project.entry-points."kb.connectors"]
    wiki = "acme_kb.wiki:WikiConnector"

where ``WikiConnector.config_model`` is a :class:`~connectors.config.SourceConfigBase`
subclass with ``kind: Literal["wiki"]``.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from connectors.config import SourceConfigBase

ENTRY_POINT_GROUP = "kb.connectors"

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
    return sorted(connector_classes())


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
    model = connector_class(kind).config_model
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
    "ENTRY_POINT_GROUP",
    "ConnectorClass",
    "connector_class",
    "connector_classes",
    "dump_source_config",
    "known_kinds",
    "parse_source_config",
]
