"""Real source databases for the SQL connector tests: MariaDB, PostgreSQL and SQLite.

Each test module gets its own uniquely named database on the local MariaDB and PostgreSQL
servers (dropped afterwards); each test starts with it empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from connectors.base import ConnectorContext

MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "mariadb", "postgres"]


@dataclass
class SourceDb:
    """A test database: ``url`` for the connector config, ``engine`` to set it up."""

    kind: str
    url: str
    engine: Engine
    name: str

    def run(self, *statements: str) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    def scalar(self, statement: str) -> object:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(statement).scalar()

    def reset(self) -> None:
        meta = sa.MetaData()
        meta.reflect(self.engine)
        meta.drop_all(self.engine)


def _unique_name() -> str:
    return f"kbtest_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def mariadb_db() -> Iterator[SourceDb]:
    name = _unique_name()
    admin = sa.create_engine(MARIADB_ADMIN, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    engine = sa.create_engine(url, poolclass=NullPool)
    yield SourceDb("mariadb", url, engine, name)
    engine.dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    admin.dispose()


@pytest.fixture(scope="module")
def postgres_db() -> Iterator[SourceDb]:
    name = _unique_name()
    admin = sa.create_engine(POSTGRES_ADMIN, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = sa.create_engine(url, poolclass=NullPool)
    yield SourceDb("postgres", url, engine, name)
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourceDb]:
    path = tmp_path_factory.mktemp("sqlite") / "source.db"
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url, poolclass=NullPool)
    yield SourceDb("sqlite", url, engine, path.name)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def source_db(request: pytest.FixtureRequest) -> Iterator[SourceDb]:
    """Each test runs against all three databases, each time starting empty."""
    db: SourceDb = request.getfixturevalue(f"{request.param}_db")
    db.reset()
    yield db
    db.reset()


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(base_dir=tmp_path, max_file_bytes=10 * 1024 * 1024, environ={})
