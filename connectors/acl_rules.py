"""Where a file lands (collection, level, ACL, metadata): path-glob rules and sidecar files.

Precedence, field by field (a layer only overrides the fields it sets):

1. the source's own ``collection``, ``level`` and ``acl`` (``acl`` unset means *unknown*);
2. sidecar files (``.kb-acl.yaml`` by default), from the root folder down to the file's own
   folder: a deeper sidecar overrides what a shallower one set; ``metadata`` merges;
3. the **first** rule in ``rules`` whose glob matches the file's relative path. Rules are the
   operator's word and pin what they set, even against a sidecar written into the share;
   list specific rules before general ones.

A sidecar that cannot be read or validated fails every file below it (fail closed: a broken
ACL file must not silently widen or narrow access). A file no layer gives an ACL keeps
``acl=None``: visible to admins only until a policy says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.globs import compile_glob
from connectors.principals import validate_principals
from core.errors import DocumentParseError

COLLECTION_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
MAX_SIDECAR_BYTES = 64 * 1024
MetadataValue = str | int | float | bool


class PlacementFields(BaseModel):
    """The fields a rule or a sidecar may set; unset fields leave the outer layer's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    acl: list[str] | None = Field(
        default=None,
        description="Principals (user:, email:, group:, svc:, role:) the documents are shared "
        "with (matched by acl:source rules); [] = shared with nobody: only admins and policy "
        "rules naming the documents read them.",
    )
    collection: str | None = Field(
        default=None, pattern=COLLECTION_PATTERN, description="Collection for matching files."
    )
    level: int | None = Field(
        default=None, ge=0, le=9, description="Classification level (0 public .. 9 most secret)."
    )
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, description="Extra metadata merged into each matching document."
    )

    @field_validator("acl")
    @classmethod
    def _principals(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else validate_principals(value)


class PathRule(PlacementFields):
    """One rule: files whose relative path matches ``glob`` get the fields it sets."""

    glob: str = Field(
        description=(
            "Glob over the POSIX path relative to the root: '*' within a folder, '**' across "
            "folders, no '/' matches the file name anywhere, a trailing '/' a whole folder."
        )
    )

    @field_validator("glob")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_glob(value)
        return value


class Sidecar(PlacementFields):
    """The content of a per-folder sidecar file (YAML)."""


@dataclass(frozen=True)
class Placement:
    collection: str
    level: int
    acl: tuple[str, ...] | None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    def overlay(self, layer: PlacementFields) -> Placement:
        given = layer.model_fields_set
        return Placement(
            collection=layer.collection
            if "collection" in given and layer.collection
            else self.collection,
            level=layer.level if "level" in given and layer.level is not None else self.level,
            acl=(None if layer.acl is None else tuple(layer.acl)) if "acl" in given else self.acl,
            metadata={**self.metadata, **layer.metadata},
        )


class PlacementResolver:
    """Resolves a file's placement; caches parsed sidecars for the life of one pass."""

    def __init__(
        self,
        root: Path,
        defaults: Placement,
        rules: list[PathRule],
        sidecar_name: str | None,
    ) -> None:
        self._root = root
        self._defaults = defaults
        self._rules = [(compile_glob(r.glob), r) for r in rules]
        self._sidecar_name = sidecar_name
        self._sidecars: dict[str, Sidecar | str | None] = {}

    def sidecar_rel_path(self, rel_dir: str) -> str | None:
        if not self._sidecar_name:
            return None
        return f"{rel_dir}/{self._sidecar_name}" if rel_dir else self._sidecar_name

    def resolve(self, rel_path: str) -> Placement:
        """Placement of one file; DocumentParseError when a sidecar above it is broken."""
        placement = self._defaults
        parts = rel_path.split("/")[:-1]
        for depth in range(len(parts) + 1):
            sidecar = self._sidecar("/".join(parts[:depth]))
            if isinstance(sidecar, str):
                raise DocumentParseError(sidecar)
            if sidecar is not None:
                placement = placement.overlay(sidecar)
        for regex, rule in self._rules:
            if regex.fullmatch(rel_path):
                placement = placement.overlay(rule)
                break
        return placement

    def _sidecar(self, rel_dir: str) -> Sidecar | str | None:
        """The parsed sidecar of a folder, None if it has none, or the reason it is broken."""
        if rel_dir in self._sidecars:
            return self._sidecars[rel_dir]
        rel = self.sidecar_rel_path(rel_dir)
        result: Sidecar | str | None = None
        if rel is not None:
            result = load_sidecar(self._root / rel, rel)
        self._sidecars[rel_dir] = result
        return result


def load_sidecar(path: Path, rel: str) -> Sidecar | str | None:
    """Parse one sidecar file: the model, None when absent, or a reason string when broken."""
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            return f"sidecar {rel} is larger than {MAX_SIDECAR_BYTES} bytes"
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"sidecar {rel} cannot be read: {type(exc).__name__}"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return f"sidecar {rel} must be a mapping with acl, collection, level or metadata"
    try:
        return Sidecar.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        return f"sidecar {rel} is invalid: {problems}"


__all__ = [
    "COLLECTION_PATTERN",
    "PathRule",
    "Placement",
    "PlacementFields",
    "PlacementResolver",
    "Sidecar",
    "load_sidecar",
]
