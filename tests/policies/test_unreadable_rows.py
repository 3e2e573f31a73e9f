"""Stored policy rows that cannot be read fail closed: an unreadable deny is widened, never
dropped (docs/policies.md, "Rules that cannot be compiled")."""

from __future__ import annotations

import logging

import numpy as np
import psycopg
import pytest

from core.identity import Caller
from policies.engine import PolicyEngine
from policies.store import PolicyStore
from server.db.engine import Database, DatabaseTarget, to_sqlalchemy_url
from server.settings import Settings
from tests.search.corpus import Doc, insert_documents, insert_sources

pytestmark = pytest.mark.anyio

# (ptype, subject, object, effect, max_level, when): written around the store, as a hand
# edit or a newer version would.
ROWS = [
    ("p", "group:staff", "*", "allow", "", ""),
    # A deny with a non-integer max_level: was silently ignored, must deny collection hr.
    ("p", "group:contractors", "collection:hr", "deny", "two", ""),
    # An unknown effect with a condition: the widest deny over its selector, unconditional.
    ("p", "group:interns", "source:finance", "DENY", "", 'metadata.team == "nobody"'),
    # An unreadable allow grants nothing.
    ("p", "group:guests", "*", "allow", "1.5", ""),
]


async def test_unreadable_rows_become_the_widest_deny_and_are_counted(
    settings: Settings, fresh_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    insert_sources(fresh_database, {"wiki": ("files", ""), "finance": ("sql", "")})
    docs = [
        Doc("wiki page", ["w"], ["group:staff"], collection="eng"),
        Doc("hr page", ["h"], ["group:staff"], collection="hr/payroll"),
        Doc("finance page", ["f"], ["group:staff"], source="finance", collection="finance"),
    ]
    insert_documents(fresh_database, docs, vectors=[[np.zeros(384)] for _ in docs])
    ids = {d.title: str(d.id) for d in docs}
    with psycopg.connect(fresh_database) as conn:
        for row in ROWS:
            conn.execute(
                "INSERT INTO policy_rules (ptype, v0, v1, v2, v3, v4) VALUES (%s,%s,%s,%s,%s,%s)",
                row,
            )
    assert settings.database.url is not None
    db = Database.open(
        DatabaseTarget(to_sqlalchemy_url(settings.database.url.get_secret_value())), settings
    )
    try:
        store = PolicyStore(db)
        with caplog.at_level(logging.WARNING):
            engine = PolicyEngine(await store.load_snapshot(()))
        assert engine.uncompilable_rules == 3
        consequences = {(p.rule.subject, p.consequence) for p in engine.snapshot.problems}
        assert consequences == {
            ("group:contractors", "widened"),
            ("group:interns", "widened"),
            ("group:guests", "dropped"),
        }
        logged = caplog.text
        assert "enforced as an unconditional deny" in logged and "(allow) dropped" in logged

        async def readable(*principals: str) -> set[str]:
            access = engine.filter_for(Caller.of(*principals))
            in_sql = await store.readable_document_ids(access)
            # The re-check alone agrees with SQL + re-check.
            by_row = {
                ids[d.title]
                for d in docs
                if access.permits(await store.document(ids[d.title]))  # type: ignore[arg-type]
            }
            assert in_sql == by_row
            return {t for t, i in ids.items() if i in in_sql}

        assert await readable("group:staff") == {"wiki page", "hr page", "finance page"}
        assert await readable("group:staff", "group:contractors") == {"wiki page", "finance page"}
        assert await readable("group:staff", "group:interns") == {"wiki page", "hr page"}
        assert await readable("group:guests") == set()
        # Not exact for the callers whose rules were rewritten: counts fall back to re-check.
        assert not engine.filter_for(Caller.of("group:staff", "group:contractors")).exact
        assert engine.filter_for(Caller.of("group:staff")).exact
    finally:
        await db.dispose()
