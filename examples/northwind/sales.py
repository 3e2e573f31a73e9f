"""docs/sales: pricing, discounting, pipeline and the kickoff deck. Readable by group:sales."""

from __future__ import annotations

from northwind.model import Deck, Folder, Prose, Section, Sheet, Slide, Workbook

KICKOFF = Deck(
    title="Sales Kickoff 2026",
    subtitle="Hamburg, 12 January 2026",
    author="Jonas Keller",
    slides=(
        Slide(
            "2025 in review",
            (
                "Bookings EUR 46.5M (104 percent of target)",
                "14 new logos, including Kestrel Grocers and Ostara Pharma",
                "Net revenue retention 118 percent",
            ),
            notes=(
                "Thank the DACH team first: they closed Kestrel, our largest deal ever at "
                "EUR 6.2M over five years."
            ),
        ),
        Slide(
            "Targets for 2026",
            (
                "Bookings target EUR 58M",
                "Robots-as-a-Service (RaaS) at 40 percent of new bookings",
                "Heron P3 attached to one in three new Tern deals",
            ),
            notes=(
                "Quota letters go out on 20 January. Accelerators start at 100 percent, not "
                "110 as last year; say this clearly, it was the top question in the survey."
            ),
        ),
        Slide(
            "Heron P3 launch plan",
            (
                "Demo units in Hamburg and Austin from February",
                "Launch offer: free installation for orders signed before 31 March",
                "Reference customer: Bluefin Logistics Rotterdam",
            ),
            notes="Do not promise delivery before April; the first production batch is sold out.",
        ),
        Slide(
            "Pricing and discounts",
            (
                "List prices in the 2026 price list",
                "Discount approval follows the discount approval policy",
                "Multi-year RaaS contracts: price locked for 36 months",
            ),
            notes=(
                "Remind everyone that any discount above 20 percent needs both the VP Sales "
                "and the CFO, and that side letters are never allowed."
            ),
        ),
    ),
)

PRICE_LIST = Workbook(
    title="Price list 2026",
    sheets=(
        Sheet(
            "prices",
            (
                ("sku", "product", "description", "list_price_eur", "unit"),
                ("TRN-T2", "Tern T2", "Autonomous mobile robot, 600 kg payload", 48500, "robot"),
                ("TRN-DOCK", "Tern docking station", "Fast charger, 45 min to 80%", 6900, "dock"),
                ("HRN-P3", "Heron P3", "Picking arm with vision, 1,200 picks/h", 129000, "arm"),
                ("FM-SITE", "Fleet Manager site licence", "Per site, per year", 36000, "year"),
                ("FM-ROBOT", "Fleet Manager robot licence", "Per robot, per year", 1800, "year"),
                ("RAAS-T2", "Tern T2 as a service", "Robot, service, software", 1650, "month"),
                ("SUP-PREM", "Premium support", "24/7, 1 hour response", 0.12, "of hardware/yr"),
                ("INST-STD", "Standard installation", "Up to 20 robots", 24000, "site"),
            ),
        ),
    ),
)

DISCOUNT_POLICY = Prose(
    title="Discount approval policy",
    author="Sales Operations",
    sections=(
        Section(
            "Approval levels",
            table=(
                ("Discount off list", "Who approves"),
                ("Up to 10 percent", "The account executive"),
                ("10 to 20 percent", "The regional sales director"),
                ("Above 20 percent", "The VP Sales and the CFO, both in writing"),
            ),
        ),
        Section(
            "Rules",
            bullets=(
                "Discounts apply to hardware and installation; software licences are "
                "discounted at most 10 percent.",
                "Multi-year RaaS deals may lock the monthly price for 36 months instead of "
                "a discount.",
                "No side letters: every commercial term is in the contract.",
                "Approvals are recorded on the opportunity in the CRM before the quote is sent.",
            ),
        ),
    ),
)

BATTLECARD = Prose(
    title="Battlecard: Northwind vs Lynx Automation",
    author="Product Marketing",
    sections=(
        Section(
            "Where we win",
            bullets=(
                "Mixed traffic: Tern T2 drives among people and forklifts; Lynx needs "
                "fenced zones or floor markers.",
                "One fleet for robots and arms: Heron and Tern share Fleet Manager.",
                "Service: 30-minute on-site response with Premium Plus in the Benelux and DACH.",
            ),
        ),
        Section(
            "Where Lynx wins",
            bullets=(
                "Lower entry price for sites under ten robots.",
                "Native integration with SAP EWM (ours goes through the WMS bridge).",
            ),
        ),
        Section(
            "Handling objections",
            (
                '"Lynx is cheaper." Compare cost per order line over five years; RaaS '
                "removes the upfront cost and includes service.",
            ),
        ),
    ),
)

PIPELINE = Workbook(
    title="Pipeline Q4 2025",
    sheets=(
        Sheet(
            "open deals",
            (
                ("account", "stage", "amount_eur", "close_date", "owner"),
                ("Bluefin Logistics (Antwerp)", "Negotiation", 2400000, "2025-12-15", "carol"),
                ("Kestrel Grocers (Utrecht II)", "Proposal", 1750000, "2026-01-31", "jonas"),
                ("Ostara Pharma", "Discovery", 600000, "2026-03-31", "carol"),
                ("Meridian Retail", "Negotiation", 3100000, "2025-12-20", "amira"),
            ),
        ),
        Sheet(
            "summary",
            (
                ("stage", "deals", "amount_eur"),
                ("Discovery", 1, 600000),
                ("Proposal", 1, 1750000),
                ("Negotiation", 2, 5500000),
            ),
        ),
    ),
)

FOLDER = Folder(
    path="sales",
    collection="sales",
    level=1,
    acl=("group:sales",),
    description="Sales: kickoff deck, price list, discount policy, battlecards, pipeline.",
    documents={
        "sales-kickoff-2026.pptx": KICKOFF,
        "price-list-2026.csv": PRICE_LIST,
        "discount-approval-policy.md": DISCOUNT_POLICY,
        "battlecard-lynx-automation.txt": BATTLECARD,
        "pipeline-q4-2025.xlsx": PIPELINE,
    },
)
