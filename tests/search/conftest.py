"""A small company corpus: engineering, HR and finance documents with different ACLs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from server.embeddings.base import Embedder
from tests.search.corpus import Doc, insert_documents, insert_sources

ENG = "group:eng"
HR = "group:hr"
ALL = "group:everyone"


def _at(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def company_docs() -> list[Doc]:
    return [
        Doc(
            "Onboarding checklist for new engineers",
            [
                "On your first day, collect your laptop from IT, install the developer "
                "toolchain and enrol in single sign-on.",
                "Request access to the source repositories and join the team chat channels.",
            ],
            [ENG],
            collection="eng",
            metadata={"team": "platform", "year": 2024},
            modified_at=_at(2024, 2),
        ),
        Doc(
            "Incident response runbook",
            [
                "When production is down, the on-call engineer is paged. Declare a severity "
                "level, open an incident channel and post status updates every 30 minutes.",
                "After recovery, write a blameless postmortem within five working days.",
            ],
            [ENG],
            collection="eng/platform",
            content_type="application/pdf",
            metadata={"team": "sre", "year": 2023},
            modified_at=_at(2023, 6),
        ),
        Doc(
            "Database backup and restore",
            [
                "Nightly backups run pg_dump against every primary and upload the archive "
                "to object storage with 35 days of retention.",
                "Point-in-time recovery replays the write-ahead log onto the last base backup.",
            ],
            [ENG],
            collection="eng/platform",
            metadata={"team": "platform", "year": 2025},
            modified_at=_at(2025, 1),
        ),
        Doc(
            "Quarterly payroll schedule",
            [
                "Salaries are paid on the 25th of each month; the payroll cut-off for "
                "overtime and bonuses is the 15th.",
            ],
            [HR],
            source="hr",
            collection="hr/payroll",
            metadata={"team": "people", "year": 2024},
            modified_at=_at(2024, 9),
        ),
        Doc(
            "Parental leave policy",
            [
                "New parents may take up to sixteen weeks of paid leave within the first "
                "year after a birth or adoption.",
            ],
            [HR, ALL],
            source="hr",
            collection="hr",
            content_type="application/pdf",
            metadata={"team": "people", "year": 2022},
            modified_at=_at(2022, 3),
        ),
        Doc(
            "Travel expense reimbursement",
            [
                "Submit receipts for flights, hotels and meals within thirty days; the per "
                "diem for meals is 60 euros.",
            ],
            [ALL],
            source="finance",
            collection="finance",
            metadata={"team": "finance", "year": 2024},
            modified_at=_at(2024, 4),
        ),
        # The most relevant document for deployment and backups queries, but only bob may
        # read it: it must never show up for anyone else, in any form.
        Doc(
            "Project BLUEBIRD acquisition plan",
            [
                "Confidential: BLUEBIRD is the codename for acquiring Initech. Production "
                "database backups of Initech will be restored with pg_dump into our cluster.",
                "When production is down during the migration the on-call engineer pages the "
                "BLUEBIRD steering group.",
            ],
            ["user:bob"],
            collection="eng",
            metadata={"team": "platform", "year": 2024},
            modified_at=_at(2024, 5),
        ),
        Doc(
            "Retired VPN guide",
            ["Connect to the old VPN concentrator with the legacy client; pg_dump tunnels."],
            [ENG],
            collection="eng",
            deleted=True,
            modified_at=_at(2020, 1),
        ),
    ]


@dataclass
class Company:
    dsn: str
    docs: dict[str, Doc]
    chunks: dict[uuid.UUID, list[int]]

    def id(self, title_start: str) -> uuid.UUID:
        return next(d.id for t, d in self.docs.items() if t.startswith(title_start))


@pytest.fixture
def company(fresh_database: str, embedder: Embedder) -> Company:
    insert_sources(
        fresh_database,
        {
            "wiki": ("files", "Engineering wiki"),
            "hr": ("files", "HR handbook"),
            "finance": ("sql", "Finance policies"),
        },
    )
    docs = company_docs()
    chunks = insert_documents(fresh_database, docs, embedder)
    return Company(fresh_database, {d.title: d for d in docs}, chunks)
