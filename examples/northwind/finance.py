"""docs/finance: budget, board update, accounting memos. group:finance, classification 2."""

from __future__ import annotations

from northwind.model import Deck, Folder, Prose, Section, Sheet, Slide, Workbook

BUDGET = Workbook(
    title="Budget 2026",
    author="Finance",
    sheets=(
        Sheet(
            "Summary",
            (
                ("line", "budget_2026_eur", "forecast_2025_eur"),
                ("Revenue", 52000000, 43800000),
                ("Cost of goods sold", 29600000, 25800000),
                ("Gross margin", 22400000, 18000000),
                ("Operating expenses", 19900000, 17100000),
                ("Operating result", 2500000, 900000),
            ),
        ),
        Sheet(
            "Opex by department",
            (
                ("department", "budget_2026_eur", "headcount_end_2026"),
                ("Engineering", 9200000, 168),
                ("Sales and marketing", 5100000, 74),
                ("Service and operations", 3000000, 121),
                ("People & Culture", 900000, 11),
                ("Finance and legal", 1700000, 19),
            ),
        ),
    ),
)

BOARD_UPDATE = Deck(
    title="Board update Q3 2025",
    subtitle="Confidential: board of directors only",
    author="Ruth Okafor, CFO",
    slides=(
        Slide(
            "Q3 results",
            (
                "Revenue EUR 11.8M (+22 percent year on year)",
                "Gross margin 41 percent",
                "Cash EUR 31.4M; runway 30 months at current burn",
            ),
            notes=(
                "Margin dipped one point because of Heron P3 launch costs; expect recovery in Q1."
            ),
        ),
        Slide(
            "Risks",
            (
                "Lidar supplier concentration: one vendor for 80 percent of units",
                "Rotterdam deadlock incident: service credit of EUR 85k to Bluefin",
                "US tariffs on components from Asia",
            ),
            notes="A second lidar vendor is in qualification; decision expected in November.",
        ),
        Slide(
            "Decisions requested",
            ("Approve the 2026 budget", "Approve a EUR 5M credit facility for RaaS fleets"),
            notes="The credit facility finances robots we own under RaaS contracts.",
        ),
    ),
)

REVENUE_MEMO = Prose(
    title="Accounting memo: revenue recognition for robots and RaaS",
    subtitle="IFRS 15 position paper, approved by the audit committee",
    author="Finance",
    sections=(
        Section(
            "Hardware sales",
            (
                "Revenue from a robot sale is recognised when the robot is commissioned at "
                "the customer site, which is when control passes. Installation is a "
                "separate performance obligation recognised as it is delivered.",
            ),
        ),
        Section(
            "Software and support",
            (
                "Fleet Manager licences and support plans are recognised evenly over the "
                "subscription term.",
            ),
        ),
        Section(
            "Robots-as-a-Service",
            (
                "RaaS contracts are operating leases: the robots stay on our balance sheet "
                "and are depreciated over five years; monthly fees are recognised as "
                "revenue each month.",
            ),
        ),
    ),
)

AUDIT_FINDINGS = Prose(
    title="External audit 2024: findings and follow-up",
    author="Finance",
    sections=(
        Section(
            "Findings",
            table=(
                ("Finding", "Severity", "Status"),
                ("Manual journal entries approved by their author", "Medium", "Closed"),
                ("Inventory count differences at Venlo", "Low", "Closed"),
                ("Access reviews for the ERP not documented", "Medium", "Open, due Q4 2025"),
            ),
        ),
        Section(
            "Next audit",
            ("Field work for the 2025 audit starts on 2 February 2026.",),
        ),
    ),
)

FOLDER = Folder(
    path="finance",
    collection="finance",
    level=2,
    acl=("group:finance",),
    description="Finance: budget, board updates, accounting memos. Classification level 2.",
    documents={
        "budget-2026.xlsx": BUDGET,
        "board-update-2025-q3.pptx": BOARD_UPDATE,
        "revenue-recognition-memo.pdf": REVENUE_MEMO,
        "audit-findings-2024.md": AUDIT_FINDINGS,
    },
)
