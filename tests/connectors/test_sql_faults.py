"""SQL sources that misbehave: refused queries, unreachable servers, dropped connections."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.base import ConnectorContext, SourceDocument
from connectors.registry import parse_source_config
from connectors.sql import SqlConnector, SqlSourceConfig
from connectors.sql_config import SqlEntryConfig
from core.errors import ConnectorError

from .conftest import SourceDb

PASSWORD = "Sup3r-Secret-Pw"


def _source(url: str, **entry: Any) -> dict[str, Any]:
    return {
        "name": "crm",
        "kind": "sql",
        "url": url,
        "tables": [{"table": "t", "primary_key": "id", "text_template": "{body}", **entry}],
    }


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM t",
        "SELECT 1; DROP TABLE t",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT * INTO t2 FROM t",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t -- comment; DROP TABLE t",
        "SELECT $$;$$ FROM t",
        "UPDATE t SET body = 'x'",
        "SELECT setval('s', 1)",
    ],
)
def test_non_select_queries_are_refused_at_configuration(query: str) -> None:
    raw = _source("sqlite:///x.db")
    raw["tables"] = [{"name": "q", "query": query, "primary_key": "id", "text_template": "x"}]
    with pytest.raises(ValueError, match="query refused"):
        parse_source_config(raw)


def test_check_refuses_a_query_that_skipped_validation(
    source_db: SourceDb, context: ConnectorContext
) -> None:
    entry = SqlEntryConfig.model_construct(
        name="q", query="DELETE FROM t", primary_key=["id"], text_template="x", table=None
    )
    cfg = SqlSourceConfig.model_construct(
        name="crm",
        kind="sql",
        url=source_db.url,
        tables=[entry],
        batch_size=100,
        connect_timeout_seconds=5,
        collection="default",
        level=0,
        acl=None,
    )
    with pytest.raises(ConnectorError, match="query 'q' refused: the query must be a SELECT"):
        SqlConnector(cfg, context).check()


def test_literal_password_in_url_is_refused() -> None:
    with pytest.raises(ValueError, match="literal password") as info:
        parse_source_config(_source(f"mysql+pymysql://kb:{PASSWORD}@127.0.0.1/crm"))
    assert PASSWORD not in str(info.value)


def test_password_reference_is_kept_and_expanded_only_to_connect(tmp_path: Path) -> None:
    cfg = parse_source_config(_source("postgresql+psycopg://kb:${CRM_PW}@127.0.0.1/crm"))
    assert "${CRM_PW}" in cfg.model_dump_json()
    ctx = ConnectorContext(base_dir=tmp_path, max_file_bytes=1000, environ={})
    with pytest.raises(ConnectorError, match="environment variable CRM_PW"):
        SqlConnector(cfg, ctx).check()


@pytest.mark.parametrize("dialect", ["mysql+pymysql", "postgresql+psycopg"])
def test_connection_refused_is_clear_and_hides_the_password(dialect: str, tmp_path: Path) -> None:
    port = _closed_port()
    cfg = parse_source_config(_source(f"{dialect}://kb:${{CRM_PW}}@127.0.0.1:{port}/crm"))
    ctx = ConnectorContext(base_dir=tmp_path, max_file_bytes=1000, environ={"CRM_PW": PASSWORD})
    connector = SqlConnector(cfg, ctx)
    for action in (connector.check, connector.scan_ids, lambda: connector.poll(None)):
        with pytest.raises(ConnectorError) as info:
            action()
        message = str(info.value)
        assert f"cannot connect to the database of source 'crm' (sql://127.0.0.1:{port}/crm)" in (
            message
        )
        assert PASSWORD not in message
        assert "refused" in message.lower() or "connect" in message.lower()
    connector.close()


def test_wrong_credentials_do_not_leak_the_password(mariadb_db: SourceDb, tmp_path: Path) -> None:
    url = f"mysql+pymysql://nobody:${{PW}}@127.0.0.1:3306/{mariadb_db.name}"
    ctx = ConnectorContext(base_dir=tmp_path, max_file_bytes=1000, environ={"PW": PASSWORD})
    with pytest.raises(ConnectorError, match="Access denied") as info:
        SqlConnector(parse_source_config(_source(url)), ctx).check()
    assert PASSWORD not in str(info.value)


def _big_table(db: SourceDb, rows: int, pad: int = 0) -> None:
    db.run("CREATE TABLE t (id INTEGER PRIMARY KEY, body VARCHAR(4000))")
    if db.kind == "postgres":
        db.run(
            f"INSERT INTO t SELECT g, 'row ' || g || repeat('x', {pad}) "
            f"FROM generate_series(1, {rows}) g"
        )
    elif db.kind == "mariadb":
        db.run(
            f"INSERT INTO t SELECT seq, CONCAT('row ', seq, REPEAT('x', {pad})) "
            f"FROM seq_1_to_{rows}"
        )
    else:
        db.run(
            "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            f"WHERE x < {rows}) SELECT x, 'row ' || x || substr(hex(zeroblob({pad})), 1, {pad}) "
            "FROM c"
        )


def test_scan_ids_streams_100k_rows(source_db: SourceDb, context: ConnectorContext) -> None:
    _big_table(source_db, 100_000)
    connector = SqlConnector(parse_source_config(_source(source_db.url)), context)
    started = time.perf_counter()
    ids = connector.scan_ids()
    elapsed = time.perf_counter() - started
    connector.close()
    assert len(ids) == 100_000
    assert "t:1" in ids and "t:100000" in ids
    assert elapsed < 20, f"scan of 100k ids took {elapsed:.1f}s"


def _kill_connector_sessions(db: SourceDb) -> int:
    if db.kind == "postgres":
        with db.engine.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'kb-connector' AND datname = current_database()"
            ).scalar()
        return int(killed or 0)
    with db.engine.connect() as conn:
        ids = (
            conn.exec_driver_sql(
                "SELECT id FROM information_schema.processlist "
                f"WHERE db = '{db.name}' AND id <> CONNECTION_ID() AND command <> 'Sleep'"
            )
            .scalars()
            .all()
        )
        for pid in ids:
            conn.exec_driver_sql(f"KILL CONNECTION {int(pid)}")
    return len(ids)


@pytest.mark.parametrize("backend", ["mariadb", "postgres"])
def test_no_session_between_pages_and_a_source_gone_mid_read_fails_clearly(
    backend: str, request: pytest.FixtureRequest, context: ConnectorContext
) -> None:
    """Each page is its own short transaction: between pages the connector holds no
    session on the source at all (issue 9, item 5); a table dropped between pages fails the
    read with the source's reason."""
    db: SourceDb = request.getfixturevalue(f"{backend}_db")
    db.reset()
    _big_table(db, 4000, pad=2000)
    raw = _source(db.url)
    raw["batch_size"] = 50
    connector = SqlConnector(parse_source_config(raw), context)
    items = connector.full_load()
    first = [next(items) for _ in range(10)]
    assert all(isinstance(i, SourceDocument) for i in first)
    assert _kill_connector_sessions(db) == 0  # the first page's transaction is over
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE t")
    with pytest.raises(ConnectorError, match="refused a query"):
        for _ in items:
            pass
    connector.close()
    db.reset()


def test_sqlite_path_is_relative_to_base_dir_and_never_created(tmp_path: Path) -> None:
    ctx = ConnectorContext(base_dir=tmp_path, max_file_bytes=1000, environ={})
    cfg = parse_source_config(_source("sqlite:///data/crm.db"))
    with pytest.raises(ConnectorError, match="'crm.db' does not exist"):
        SqlConnector(cfg, ctx).check()
    assert not (tmp_path / "data" / "crm.db").exists()

    (tmp_path / "data").mkdir()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'crm.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 'hello')")
    engine.dispose()
    connector = SqlConnector(cfg, ctx)
    connector.check()
    (doc,) = list(connector.full_load())
    assert isinstance(doc, SourceDocument)
    assert doc.uri == "sql://localhost/crm.db/t/1"
    connector.close()
