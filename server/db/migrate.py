"""Alembic, driven from code: `kb db upgrade|downgrade|current` and the start-up check.

Only `kb serve` (unless ``--no-migrate``) and `kb db upgrade` migrate; `kb db downgrade`
migrates down only when asked by name. Every other process calls :func:`require_current`
and refuses to run against a schema it was not written for, so a newer CLI pointed at
production never upgrades the schema under running servers.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from core.errors import SchemaMismatch


def _migrations_dir() -> Path:
    # Located, not imported: `migrations/env.py` imports `server.db.models`, so importing the
    # package here would close a cycle. Alembic executes the scripts itself.
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the migrations package is not installed beside the server")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


MIGRATIONS_DIR = _migrations_dir()


def alembic_config(url: URL) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: '%' in passwords would break interpolation.
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: URL, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@cache  # the scripts of an installed process do not change; /readyz asks on every probe
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config(URL.create("postgresql"))).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them")
    return heads[0]


def current_revision(url: URL) -> str | None:
    engine = create_engine(url, poolclass=None)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_current(url: URL) -> bool:
    return current_revision(url) == head_revision()


def require_current(url: URL) -> str:
    """The database's revision if it is this kb's head; else :class:`SchemaMismatch`."""
    current = current_revision(url)
    head = head_revision()
    if current == head:
        return head
    shown = current or "base (empty)"
    known = current is None or _is_known(current)
    if known:
        raise SchemaMismatch(
            f"database schema is at {shown}, this kb expects {head}: run `kb db upgrade`"
        )
    raise SchemaMismatch(
        f"database schema is at {shown}, this kb expects {head}: the database was "
        "migrated by a newer kb; run that version (or `kb db downgrade` with it)"
    )


def _is_known(revision: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config(URL.create("postgresql")))
    return any(rev.revision == revision for rev in script.walk_revisions())


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_current",
    "require_current",
    "upgrade",
]
