"""The SQL connector against real MariaDB, PostgreSQL and SQLite databases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.base import ConnectorContext, FailedDocument, SourceDocument
from connectors.registry import parse_source_config
from connectors.sql import SqlConnector, SqlSourceConfig
from core.errors import ConnectorError

from .conftest import SourceDb

T0 = datetime(2024, 5, 1, 12, 0, 0)


def employees_table(db: SourceDb, rows: list[dict[str, Any]], name: str = "employees") -> sa.Table:
    meta = sa.MetaData()
    table = sa.Table(
        name,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("dept", sa.String(50)),
        sa.Column("bio", sa.Text),
        sa.Column("readers", sa.String(200)),
        sa.Column("coll", sa.String(50)),
        sa.Column("lvl", sa.Integer),
        sa.Column("salary", sa.Numeric(10, 2)),
        sa.Column("updated_at", sa.DateTime),
    )
    meta.create_all(db.engine)
    if rows:
        with db.engine.begin() as conn:
            conn.execute(table.insert(), [_row(**r) for r in rows])
    return table


def _row(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dept": "hr",
        "bio": "Works here.",
        "readers": None,
        "coll": None,
        "lvl": None,
        "salary": 1000,
        "updated_at": T0,
    }
    return {**base, **values}


def config(db: SourceDb, **entry: Any) -> SqlSourceConfig:
    source_extra = entry.pop("source_extra", {})
    raw = {
        "name": "hr",
        "kind": "sql",
        "url": db.url,
        "tables": [
            {
                "table": "employees",
                "primary_key": "id",
                "text_template": "{name} works in {dept}. {bio}",
                "title_column": "name",
                **entry,
            }
        ],
        **source_extra,
    }
    parsed = parse_source_config(raw)
    assert isinstance(parsed, SqlSourceConfig)
    return parsed


def docs(items: Any) -> dict[str, SourceDocument]:
    out: dict[str, SourceDocument] = {}
    for item in items:
        assert isinstance(item, SourceDocument), item
        out[item.external_id] = item
    return out


def test_table_rows_become_documents(source_db: SourceDb, context: ConnectorContext) -> None:
    employees_table(
        source_db,
        [
            {"id": 1, "name": "Alice", "readers": "hr, finance", "coll": "people", "lvl": 2},
            {"id": 2, "name": "Bob", "readers": '["group:ops", "email:Bob@Example.COM"]'},
            {"id": 3, "name": "Carol", "readers": "user:carol; managers"},
            {"id": 4, "name": "Dan", "readers": None},
        ],
    )
    cfg = config(
        source_db,
        acl_columns=["readers"],
        collection_column="coll",
        level_column="lvl",
        metadata_columns=["dept", "salary"],
        source_extra={"collection": "staff", "level": 1},
    )
    connector = SqlConnector(cfg, context)
    connector.check()
    found = docs(connector.full_load())
    connector.close()

    assert set(found) == {"employees:1", "employees:2", "employees:3", "employees:4"}
    alice = found["employees:1"]
    assert alice.title == "Alice"
    assert alice.text == "Alice works in hr. Works here."
    assert alice.acl == ("group:finance", "group:hr")
    assert (alice.collection, alice.level) == ("people", 2)
    assert alice.metadata["dept"] == "hr" and alice.metadata["salary"] == 1000
    assert alice.path == "/employees/1"
    assert alice.content_type == "text/plain"
    assert alice.uri.startswith("sql://") and alice.uri.endswith(f"/{source_db.name}/employees/1")
    assert found["employees:2"].acl == ("email:bob@example.com", "group:ops")
    assert found["employees:3"].acl == ("group:managers", "user:carol")
    # No ACL in the row and no fixed ACL: unknown, which means admins only.
    assert found["employees:4"].acl is None
    assert (found["employees:4"].collection, found["employees:4"].level) == ("staff", 1)


def test_query_entry_with_join(source_db: SourceDb, context: ConnectorContext) -> None:
    employees_table(source_db, [{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}])
    source_db.run(
        "CREATE TABLE notes (emp_id INTEGER, seq INTEGER, body VARCHAR(200), "
        "PRIMARY KEY (emp_id, seq))",
        "INSERT INTO notes VALUES (1, 1, 'Promoted in May'), (2, 7, 'On leave / back in June')",
    )
    raw = {
        "name": "hr",
        "kind": "sql",
        "url": source_db.url,
        "acl": ["group:hr"],
        "tables": [
            {
                "name": "notes",
                "query": "SELECT n.emp_id, n.seq, e.name, n.body FROM notes n "
                "JOIN employees e ON e.id = n.emp_id WHERE n.body <> 'x;y';",
                "primary_key": ["emp_id", "seq"],
                "text_template": ["name", "body"],
                "title_template": "Note {seq} on {name}",
            }
        ],
    }
    connector = SqlConnector(parse_source_config(raw), context)
    connector.check()
    found = docs(connector.full_load())
    assert set(found) == {"notes:1/1", "notes:2/7"}
    assert found["notes:1/1"].text == "name: Alice\nbody: Promoted in May"
    assert found["notes:2/7"].title == "Note 7 on Bob"
    assert found["notes:1/1"].acl == ("group:hr",)  # the source's fixed ACL
    assert connector.scan_ids() == {"notes:1/1", "notes:2/7"}
    connector.close()


def test_poll_uses_cursor_and_lookback(source_db: SourceDb, context: ConnectorContext) -> None:
    table = employees_table(
        source_db,
        [
            {"id": 1, "name": "Old", "updated_at": T0 - timedelta(hours=3)},
            {"id": 2, "name": "Older", "updated_at": T0 - timedelta(hours=2)},
            {"id": 3, "name": "Newest", "updated_at": T0 - timedelta(hours=1)},
            {"id": 9, "name": "Undated", "updated_at": None},
        ],
    )
    connector = SqlConnector(config(source_db, updated_at="updated_at"), context)
    items, cursor = connector.poll(None)
    assert set(docs(items)) == {"employees:1", "employees:2", "employees:3", "employees:9"}
    position = cursor["entries"]["employees"]
    assert datetime.fromisoformat(position["updated_at"]).replace(tzinfo=None) == T0 - timedelta(
        hours=1
    )

    late = T0 - timedelta(hours=1, seconds=100)  # committed late, inside the look-back window
    too_late = T0 - timedelta(hours=1, seconds=1000)  # outside it: missed by design
    with source_db.engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == 1).values(name="Renamed", updated_at=T0))
        conn.execute(
            table.insert(),
            [
                _row(id=4, name="Late", updated_at=late),
                _row(id=5, name="Too late", updated_at=too_late),
            ],
        )
    items, cursor2 = connector.poll(cursor)
    got = docs(items)
    # Changed row, the row at the old cursor, the late row and the undated one; not row 2.
    assert set(got) == {"employees:1", "employees:3", "employees:4", "employees:9"}
    assert got["employees:1"].title == "Renamed"
    assert (
        datetime.fromisoformat(cursor2["entries"]["employees"]["updated_at"]).replace(tzinfo=None)
        == T0
    )

    # Nothing changed: only rows inside the window (and undated rows) come back.
    items, cursor3 = connector.poll(cursor2)
    assert set(docs(items)) == {"employees:1", "employees:9"}
    assert cursor3 == cursor2

    # A changed configuration reads every row again.
    wider = SqlConnector(config(source_db, updated_at="updated_at", lookback_seconds=1), context)
    items, _ = wider.poll(cursor3)
    assert len(docs(items)) == 6
    connector.close()
    wider.close()


def test_poll_without_updated_at_reads_all_rows(
    source_db: SourceDb, context: ConnectorContext
) -> None:
    employees_table(source_db, [{"id": i, "name": f"E{i}"} for i in range(1, 6)])
    connector = SqlConnector(config(source_db), context)
    items, cursor = connector.poll(None)
    assert len(docs(items)) == 5
    items, cursor2 = connector.poll(cursor)
    assert len(docs(items)) == 5
    assert cursor2 == cursor
    connector.close()


def test_scan_ids_finds_deletions(source_db: SourceDb, context: ConnectorContext) -> None:
    table = employees_table(source_db, [{"id": i, "name": f"E{i}"} for i in range(1, 11)])
    connector = SqlConnector(config(source_db), context)
    assert connector.scan_ids() == {f"employees:{i}" for i in range(1, 11)}
    with source_db.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.id.in_([3, 7])))
    assert connector.scan_ids() == {f"employees:{i}" for i in range(1, 11) if i not in (3, 7)}
    connector.close()


def test_bad_rows_fail_alone(source_db: SourceDb, context: ConnectorContext) -> None:
    employees_table(
        source_db,
        [
            {"id": 1, "name": "Fine", "lvl": 3},
            {"id": 2, "name": "Bad level", "lvl": 12},
            {"id": 3, "name": "Bad collection", "coll": "no spaces allowed"},
            {"id": 4, "name": "Bad principal", "readers": "email:"},
        ],
    )
    cfg = config(source_db, acl_columns="readers", collection_column="coll", level_column="lvl")
    items = list(SqlConnector(cfg, context).full_load())
    ok = [i for i in items if isinstance(i, SourceDocument)]
    failed = {i.external_id: i.reason for i in items if isinstance(i, FailedDocument)}
    assert [d.external_id for d in ok] == ["employees:1"]
    assert "level" in failed["employees:2"]
    assert "collection" in failed["employees:3"]
    assert "ACL" in failed["employees:4"]


def test_check_names_missing_table_and_column(
    source_db: SourceDb, context: ConnectorContext
) -> None:
    with pytest.raises(ConnectorError, match="table 'employees' does not exist"):
        SqlConnector(config(source_db), context).check()
    employees_table(source_db, [])
    with pytest.raises(ConnectorError, match=r"'nickname' \(needed by text_template\)"):
        SqlConnector(config(source_db, text_template="{nickname}"), context).check()
    with pytest.raises(ConnectorError, match=r"'changed' \(needed by updated_at\)"):
        SqlConnector(config(source_db, updated_at="changed"), context).check()
    with pytest.raises(ConnectorError, match=r"'owners' \(needed by acl_columns\)"):
        SqlConnector(config(source_db, acl_columns=["owners"]), context).check()
    bad_query = {
        "name": "hr",
        "kind": "sql",
        "url": source_db.url,
        "tables": [
            {
                "name": "q",
                "query": "SELECT id FROM employees",
                "primary_key": "id",
                "text_template": "{name}",
            }
        ],
    }
    with pytest.raises(ConnectorError, match=r"query 'q' has no column 'name'"):
        SqlConnector(parse_source_config(bad_query), context).check()


def test_read_only_transaction_refuses_writes(
    source_db: SourceDb, context: ConnectorContext
) -> None:
    employees_table(source_db, [{"id": 1, "name": "Alice"}])
    connector = SqlConnector(config(source_db), context)
    with pytest.raises(sa.exc.DBAPIError), connector._session.read_only() as conn:
        conn.exec_driver_sql("DELETE FROM employees")
    connector.close()
    assert source_db.scalar("SELECT COUNT(*) FROM employees") == 1
