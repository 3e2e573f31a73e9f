"""examples/northwind.db: support tickets and HR policies, each row with its audience.

Rows carry a ``department`` and an ``acl`` column (principals separated by commas) so the
SQL connector can map every row to who may read it, and an ``updated_at`` column so syncs
are incremental.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

TICKET_ACL = {
    "engineering": "group:eng,group:support",
    "sales": "group:sales,group:support",
    "support": "group:support",
}

# (id, subject, customer, product, priority, status, department, updated_at, body)
TICKETS: tuple[tuple[int, str, str, str, str, str, str, str, str], ...] = (
    (
        1001,
        "Robots stop at aisle 14 after map edit",
        "Bluefin Logistics",
        "Fleet Manager",
        "critical",
        "closed",
        "engineering",
        "2025-08-21 16:05:00",
        "38 Tern robots stopped in a deadlock after a map edit was published. Cleared by "
        "restarting the traffic controller. See postmortem 2025-014.",
    ),
    (
        1002,
        "Heron P2 drops soft packaging",
        "Kestrel Grocers",
        "Heron P2",
        "high",
        "open",
        "engineering",
        "2025-09-30 10:20:00",
        "Suction gripper loses grip on bags of salad. Customer asks whether the Heron P3 "
        "two-finger gripper fixes this; vision team is collecting samples.",
    ),
    (
        1003,
        "Invoice shows wrong RaaS rate",
        "Ostara Pharma",
        "Tern T2",
        "normal",
        "open",
        "sales",
        "2025-09-29 15:42:00",
        "October invoice charges EUR 1,800 per robot per month instead of the contracted "
        "EUR 1,650. Account executive to confirm the price lock and ask billing for a credit.",
    ),
    (
        1004,
        "Battery telemetry missing on robot T2-0412",
        "Bluefin Logistics",
        "Tern T2",
        "normal",
        "closed",
        "support",
        "2025-09-12 09:03:00",
        "BatteryTelemetryStale alert every night at 02:00. Cause: access point reboot "
        "schedule on the customer network. Customer moved the reboot to 04:30.",
    ),
    (
        1005,
        "Docking station charges slowly",
        "Meridian Retail",
        "Tern docking station",
        "normal",
        "open",
        "support",
        "2025-09-27 11:15:00",
        "Charging to 80 percent takes 70 minutes instead of 45. Field engineer found a worn "
        "contact plate; replacement part shipped from Venlo.",
    ),
    (
        1006,
        "Request for multi-floor support",
        "Kestrel Grocers",
        "Fleet Manager",
        "low",
        "open",
        "sales",
        "2025-09-18 13:30:00",
        "Customer plans a mezzanine in Utrecht II and asks when robots can use the goods lift. "
        "Multi-floor is on the navigation roadmap for Q3 2026.",
    ),
    (
        1007,
        "WMS bridge rejects orders with 60+ lines",
        "Meridian Retail",
        "Fleet Manager",
        "high",
        "resolved",
        "engineering",
        "2025-09-25 17:48:00",
        "Orders with more than 60 lines failed validation in wms-bridge. Limit raised to 500 in "
        "Fleet Manager 4.2.1; customer confirmed the fix.",
    ),
    (
        1008,
        "Safety lidar fault after cleaning",
        "Ostara Pharma",
        "Tern T2",
        "high",
        "closed",
        "support",
        "2025-08-30 08:10:00",
        "Robot refused to drive after the lidar window was cleaned with an alcohol wipe. "
        "Residue caused a contamination fault; cleaning instructions sent to the site.",
    ),
    (
        1009,
        "Quote for ten more Tern robots",
        "Bluefin Logistics",
        "Tern T2",
        "normal",
        "open",
        "sales",
        "2025-09-26 10:00:00",
        "Customer wants ten more robots for the Antwerp site before peak season. Needs a 15 "
        "percent discount, which the regional sales director must approve.",
    ),
    (
        1010,
        "Heron P3 early access",
        "Meridian Retail",
        "Heron P3",
        "low",
        "open",
        "sales",
        "2025-09-22 14:25:00",
        "Customer asks to join the Heron P3 early-access programme. First production batch is "
        "sold out; offered a demo in Hamburg in February.",
    ),
)

# (id, title, audience, updated_at, body); audience "all" is company-wide, "hr" is HR-only.
HR_POLICIES: tuple[tuple[int, str, str, str, str], ...] = (
    (
        1,
        "Remote work",
        "all",
        "2025-06-01 09:00:00",
        "Office roles may work from home up to three days a week. Agree the days with your "
        "team; Tuesdays are office days for everyone in Eindhoven.",
    ),
    (
        2,
        "Holiday carry-over",
        "all",
        "2025-01-15 09:00:00",
        "Up to five unused holiday days carry over to the next year and expire on 1 July.",
    ),
    (
        3,
        "Bicycle lease",
        "all",
        "2025-03-10 09:00:00",
        "Employees may lease a bicycle or e-bike of up to EUR 3,000 through salary exchange "
        "for three years.",
    ),
    (
        4,
        "Salary review calendar",
        "hr",
        "2025-09-01 09:00:00",
        "Managers submit proposals by 15 November; People & Culture calibrates across "
        "departments in the first week of December; increases take effect on 1 January.",
    ),
    (
        5,
        "Handling misconduct reports",
        "hr",
        "2025-05-20 09:00:00",
        "Every report is logged in the case system within one working day and handled by two "
        "HR business partners; the reporter's identity is shared only with their consent.",
    ),
    (
        6,
        "Background checks",
        "hr",
        "2025-02-11 09:00:00",
        "Roles with access to customer sites require a certificate of conduct (VOG) before the "
        "start date; HR requests it through the government portal.",
    ),
)

# Company-wide rows are for every employee (role:staff in examples/policies.yaml).
HR_ACL = {"all": "role:staff", "hr": "group:hr"}

_SCHEMA = """
CREATE TABLE support_tickets (
    ticket_id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    customer TEXT NOT NULL,
    product TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    department TEXT NOT NULL,
    acl TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE hr_policies (
    policy_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    audience TEXT NOT NULL,
    department TEXT NOT NULL,
    acl TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
"""


def write_database(path: Path) -> None:
    """(Re)create the SQLite file from scratch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(_SCHEMA)
        conn.executemany(
            "INSERT INTO support_tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (tid, subj, cust, prod, prio, status, dept, TICKET_ACL[dept], body, ts)
                for tid, subj, cust, prod, prio, status, dept, ts, body in TICKETS
            ],
        )
        conn.executemany(
            "INSERT INTO hr_policies VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (pid, title, audience, "hr", HR_ACL[audience], body, ts)
                for pid, title, audience, ts, body in HR_POLICIES
            ],
        )
        conn.commit()
    finally:
        conn.close()
