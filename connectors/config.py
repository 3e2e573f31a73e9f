"""The part of a source's configuration that every kind of connector shares.

Each connector module defines a subclass with ``kind: Literal["..."]``; the registry joins
them into a discriminated union (see :mod:`connectors.registry`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SourceConfigBase(BaseModel):
    """Fields common to every source, whatever its kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Stable identifier of the source (lowercase letters, digits, '-' and '_').",
    )
    kind: str = Field(description="Connector kind, e.g. 'files' or 'sql'.")
    description: str = Field(default="", description="Shown to operators and in list_sources.")
    enabled: bool = Field(
        default=True, description="Disabled sources are neither synced nor served."
    )
    schedule: str | None = Field(
        default=None,
        description="Cron expression (five fields, UTC) for periodic syncs; none for manual only.",
    )
    watch: bool = Field(
        default=False,
        description="Follow the source continuously (files: filesystem events; sql: a "
        "short-interval poll of the updated_at column) so changes reach search in seconds. "
        "`kb worker` runs one watcher per watched source across all workers; schedules "
        "still run.",
    )
    collection: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="Collection documents land in unless a rule says otherwise ('a/b' nests).",
    )
    level: int = Field(
        default=0, ge=0, le=9, description="Classification level (0 public .. 9 most secret)."
    )
    acl: list[str] | None = Field(
        default=None,
        description=(
            "Principals (user:, email:, group:, svc:, role:) the source shares documents "
            "with when it gives no ACL itself; acl:source rules match them. Unset or []: "
            "shared with nobody, so only admins and policy rules naming the documents "
            "(collection, path, source, doc or *) read them."
        ),
    )


__all__ = ["SourceConfigBase"]
