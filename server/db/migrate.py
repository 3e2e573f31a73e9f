"""Alembic, driven from code: `kb db upgrade|downgrade|current` and the start-up check."""

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


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_current",
    "upgrade",
]
