"""The small pieces: globs, principals, templates, the query guard, SQL cursor positions."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors.acl_rules import PathRule, Sidecar
from connectors.base import Connector, ConnectorContext
from connectors.files import FilesConnector, FilesSourceConfig
from connectors.globs import GlobSet, glob_matches
from connectors.principals import normalise_principal, principals_from_cells, split_acl_value
from connectors.registry import connector_class
from connectors.sql import SqlConnector
from connectors.sql_config import SqlEntryConfig, SqlSourceConfig
from connectors.sql_cursor import encode_position, lookback_bound
from connectors.sql_guard import UnsafeQuery, check_select
from connectors.sql_rows import key_text
from connectors.templating import render, template_fields


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.pdf", "a.pdf", True),
        ("*.pdf", "deep/down/a.pdf", True),
        ("*.pdf", "a.pdf.txt", False),
        ("hr/**", "hr/a.md", True),
        ("hr/**", "hr/x/y/a.md", True),
        ("hr/**", "other/hr/a.md", False),
        ("hr/*.md", "hr/x/a.md", False),
        ("**/payroll/*.xlsx", "hr/payroll/2024.xlsx", True),
        ("**/payroll/*.xlsx", "payroll/2024.xlsx", True),
        ("archive/", "x/archive/old.md", True),
        ("/README.md", "README.md", True),
        ("/README.md", "docs/README.md", False),
        ("report-?.md", "report-1.md", True),
        ("[!a]*.md", "b.md", True),
        ("[!a]*.md", "a.md", False),
    ],
)
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert glob_matches(pattern, path) is expected


def test_exclude_matches_parent_folders() -> None:
    hidden = GlobSet((".*",))
    assert hidden.matches_path_or_parent(".git/objects/ab")
    assert not hidden.matches_path_or_parent("src/git.md")


def test_principal_normalisation() -> None:
    assert split_acl_value("hr, finance;ops") == ["hr", "finance", "ops"]
    assert split_acl_value('["a", "b"]') == ["a", "b"]
    assert split_acl_value(["x", None, " "]) == ["x"]
    assert split_acl_value(None) == []
    assert principals_from_cells(["hr", "user:ann", "Email:X@Y.com"], "group:") == {
        "group:hr",
        "user:ann",
        "group:Email:X@Y.com",  # prefixes are case-sensitive, like the identity side
    }
    assert normalise_principal("email:Ann@Example.COM") == "email:ann@example.com"
    assert normalise_principal("ann", "user:") == "user:ann"
    with pytest.raises(ValueError, match="needs a prefix"):
        normalise_principal("ann")
    with pytest.raises(ValueError, match="no name"):
        normalise_principal("group:", "group:")


def test_templates() -> None:
    row = {"name": "Ann", "amount": Decimal("12.5"), "day": date(2024, 5, 1), "note": None}
    assert render("{name} owes {amount:.2f} since {day:%d %B}.{note}", row) == (
        "Ann owes 12.50 since 01 May."
    )
    assert render(["name", "note", "day"], row) == "name: Ann\nday: 2024-05-01"
    assert template_fields("{a} and {b!r} and {a}") == ["a", "b"]
    for bad in ("{}", "{0}", "{a.__class__}", "{a[0]}", "{a:{b}}", "{a"):
        with pytest.raises(ValueError):
            template_fields(bad)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "select * from t;",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SELECT REPLACE(name, 'a', 'b'), 'delete; drop' AS s, \"update\" FROM t",
        "SELECT 'it''s' AS quote",
        "SELECT tags[1] FROM t",
        "SELECT last_update, deleted_flag FROM t",
    ],
)
def test_guard_accepts_plain_selects(query: str) -> None:
    assert check_select(query) == query.strip().rstrip(";").rstrip()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("DELETE FROM t", "must be a SELECT"),
        ("SELECT 1; DROP TABLE t", "only one statement"),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE is not allowed"),
        ("WITH x AS (SELECT 1) UPDATE t SET a = 1", "UPDATE is not allowed"),
        ("SELECT * INTO copy FROM t", "INTO is not allowed"),
        ("SELECT * FROM t FOR UPDATE", "UPDATE is not allowed"),
        ("SELECT * FROM t FOR SHARE", "row locking"),
        ("SELECT * FROM t LOCK IN SHARE MODE", "LOCK is not allowed"),
        ("SELECT 1 /* x */", "comments"),
        ("SELECT 1 # x", "comments"),
        ("SELECT $q$ ; DROP TABLE t; $q$", "'$'"),
        ("SELECT 'a\\'; DROP TABLE t; --'", "backslashes"),
        ("SELECT [x'] FROM t", "ambiguous"),
        ("SELECT 'unterminated", "unterminated"),
        ("SELECT pg_sleep(10)", "pg_sleep() is not allowed"),
        ("", "empty"),
        ("EXPLAIN ANALYZE DELETE FROM t", "must be a SELECT"),
    ],
)
def test_guard_refuses(query: str, reason: str) -> None:
    with pytest.raises(UnsafeQuery, match=re.escape(reason)):
        check_select(query)


def test_cursor_positions() -> None:
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    position = encode_position(moment)
    assert position == {"updated_at": "2024-05-01T12:00:00+00:00", "type": "datetime"}
    assert lookback_bound(position, 60) == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert lookback_bound(encode_position("2024-05-01 12:00:00") or {}, 60) == (
        "2024-05-01 11:59:00"
    )
    assert lookback_bound(encode_position(1_700_000_000) or {}, 300) == 1_699_999_700
    assert lookback_bound(encode_position(date(2024, 5, 2)) or {}, 86400) == date(2024, 5, 1)
    assert lookback_bound(encode_position("not a time") or {}, 60) is None
    assert encode_position(None) is None


def test_primary_key_text_is_unambiguous() -> None:
    assert key_text(["a/b", "c"]) != key_text(["a", "b/c"])
    assert key_text([1, "x%2Fy"]) == "1/x%252Fy"


def test_registered_kinds_implement_the_protocol(tmp_path: Path) -> None:
    assert connector_class("files") is FilesConnector
    assert connector_class("sql") is SqlConnector
    ctx = ConnectorContext(base_dir=tmp_path, max_file_bytes=10)
    files = FilesConnector(FilesSourceConfig(name="d", kind="files", root="."), ctx)
    assert isinstance(files, Connector)
    sql = SqlConnector(
        SqlSourceConfig.model_validate(
            {
                "name": "s",
                "kind": "sql",
                "url": "sqlite:///x.db",
                "tables": [{"table": "t", "primary_key": "id", "text_template": ["a"]}],
            }
        ),
        ctx,
    )
    assert isinstance(sql, Connector)


@pytest.mark.parametrize(
    "model", [FilesSourceConfig, SqlSourceConfig, SqlEntryConfig, PathRule, Sidecar]
)
def test_every_config_field_is_documented(model: type[BaseModel]) -> None:
    undocumented = [n for n, f in model.model_fields.items() if not f.description]
    assert undocumented == []
