"""A uniquely named database in the local MariaDB (127.0.0.1:3306, root), dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

HOST, PORT, USER = "127.0.0.1", 3306, "root"


def connect(database: str | None = None) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host=HOST, port=PORT, user=USER, password="", database=database, autocommit=True
    )


@contextmanager
def mariadb_database(prefix: str = "kbtest") -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def url(database: str) -> str:
    return f"mysql+pymysql://{USER}@{HOST}:{PORT}/{database}"


def create_tickets(database: str, rows: int) -> None:
    """``tickets``: one short row per ticket (one chunk each), spread over 2024."""
    with connect(database) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE tickets (id INT PRIMARY KEY, subject VARCHAR(200) NOT NULL, "
            "body TEXT NOT NULL, team VARCHAR(50) NOT NULL, updated_at DATETIME(6) NOT NULL)"
        )
        cur.executemany(
            "INSERT INTO tickets VALUES (%s, %s, %s, %s, "
            "TIMESTAMPADD(MINUTE, %s, '2024-01-01 00:00:00'))",
            [ticket(i) for i in range(1, rows + 1)],
        )


def ticket(i: int) -> tuple[Any, ...]:
    teams = ("support", "billing", "network")
    return (
        i,
        f"Ticket {i}",
        f"Printer {i % 97} on floor {i % 7} jams daily, case {i}.",
        teams[i % 3],
        i,
    )


def tickets_source(database: str, **entry: Any) -> dict[str, Any]:
    table = {
        "table": "tickets",
        "primary_key": "id",
        "text_template": "{subject}\n{body}",
        "title_column": "subject",
        "updated_at": "updated_at",
        "acl_columns": "team",
        "collection": "tickets",
        **entry,
    }
    return {"name": "tickets", "kind": "sql", "url": url(database), "tables": [table]}
