"""docs/hr: people policies and pay. Restricted to group:hr."""

from __future__ import annotations

from northwind.model import Folder, Prose, Section, Sheet, Workbook

HANDBOOK = Prose(
    title="Employee Handbook",
    subtitle="Northwind Robotics B.V., edition 2026",
    author="People & Culture",
    sections=(
        Section(
            "Working hours and flexible work",
            (
                "A full-time week is 40 hours. Core hours are 10:00 to 15:00; outside them "
                "you plan your own day with your team. Office roles may work from home up "
                "to three days a week; plant and service roles follow their shift plan.",
            ),
        ),
        Section(
            "Paid time off",
            (
                "Full-time employees receive 25 days of paid holiday per year plus Dutch "
                "public holidays. Up to five unused days carry over to the next year and "
                "expire on 1 July.",
            ),
        ),
        Section(
            "Sick leave",
            (
                "Report sick to your manager before 09:00 on the first day. From the third "
                "day of absence the company doctor (arbodienst) contacts you. Salary is paid "
                "in full for the first 52 weeks of illness.",
            ),
        ),
        Section(
            "Expenses and travel",
            (
                "Submit expenses within 30 days in the expense tool with a photo of the "
                "receipt. Train is the default for trips under 600 km; flights need manager "
                "approval. Hotels up to EUR 160 per night, EUR 220 in London, Paris and New "
                "York.",
            ),
        ),
        Section(
            "Equipment",
            (
                "Everyone receives a laptop and a phone. Home-office budget: EUR 750 once, "
                "then EUR 250 every two years.",
            ),
        ),
        Section(
            "Code of conduct",
            (
                "Treat colleagues, customers and suppliers with respect. Report concerns to "
                "your manager, to People & Culture or anonymously through the "
                "speak-up line; retaliation against anyone who reports in good faith is a "
                "dismissal offence.",
            ),
        ),
    ),
)

PARENTAL_LEAVE = Prose(
    title="Parental Leave Policy",
    subtitle="Effective 1 January 2026",
    author="People & Culture",
    sections=(
        Section(
            "Entitlement",
            (
                "The birth parent receives 16 weeks of leave at full pay. The partner or "
                "second parent receives 10 weeks at full pay, to be taken within the first "
                "year. Adoptive and foster parents receive 10 weeks each.",
                "On top of this, every parent may take up to 26 weeks of unpaid parental "
                "leave before the child turns eight, as Dutch law provides.",
            ),
        ),
        Section(
            "Eligibility",
            (
                "You are eligible after six months of employment. Contractors and interns "
                "follow the statutory minimum only.",
            ),
        ),
        Section(
            "How to apply",
            (
                "Tell your manager and People & Culture at least ten weeks before the "
                "expected due date, then file the request in the HR portal under "
                "Leave > Parental leave. P&C confirms the dates within five working days.",
            ),
        ),
        Section(
            "Returning to work",
            (
                "You may return part-time for the first four weeks at full pay (a phased "
                "return). Your role, grade and salary review are protected while you are "
                "on leave.",
            ),
        ),
    ),
)

SALARY_BANDS = Workbook(
    title="Salary bands 2026",
    author="People & Culture",
    sheets=(
        Sheet(
            "Engineering",
            (
                ("grade", "title", "min_eur", "mid_eur", "max_eur"),
                ("E1", "Engineer I", 46000, 52000, 58000),
                ("E2", "Engineer II", 56000, 64000, 72000),
                ("E3", "Senior Engineer", 70000, 80000, 90000),
                ("E4", "Staff Engineer", 88000, 100000, 112000),
                ("E5", "Principal Engineer", 108000, 122000, 136000),
            ),
        ),
        Sheet(
            "Sales",
            (
                ("grade", "title", "min_eur", "mid_eur", "max_eur"),
                ("S1", "Sales Development Representative", 40000, 45000, 50000),
                ("S2", "Account Executive", 58000, 66000, 74000),
                ("S3", "Senior Account Executive", 72000, 82000, 92000),
                ("S4", "Regional Sales Director", 95000, 110000, 125000),
            ),
        ),
        Sheet(
            "Notes",
            (
                ("note",),
                ("Base salary only; sales roles add on-target commission of 30 to 50 percent.",),
                ("Bands are reviewed every January against the Radford benchmark.",),
            ),
        ),
    ),
)

ONBOARDING = Prose(
    title="Onboarding checklist for new hires",
    author="People & Culture",
    sections=(
        Section(
            "Before day one",
            bullets=(
                "Signed contract and copy of ID received",
                "Laptop and phone ordered (IT needs five working days)",
                "Buddy assigned from the new hire's team",
            ),
        ),
        Section(
            "First day",
            bullets=(
                "Welcome at reception at 09:30, badge photo and safety induction",
                "Plant tour with the buddy, including the robot test hall",
                "Accounts: e-mail, HR portal, expense tool",
            ),
        ),
        Section(
            "First month",
            bullets=(
                "Meet the manager weekly; agree 30-60-90 day goals",
                "Complete the robot safety training (mandatory before entering the test hall)",
                "Check-in with People & Culture after four weeks",
            ),
        ),
    ),
)

FOLDER = Folder(
    path="hr",
    collection="hr",
    level=1,
    acl=("group:hr",),
    description="People & Culture: handbook, leave policies, salary bands. HR only.",
    documents={
        "employee-handbook.docx": HANDBOOK,
        "parental-leave-policy.pdf": PARENTAL_LEAVE,
        "salary-bands-2026.xlsx": SALARY_BANDS,
        "onboarding-checklist.md": ONBOARDING,
    },
)
