"""docs/public: what Northwind Robotics tells the world. Every employee (role:staff) reads it."""

from __future__ import annotations

from northwind.model import Folder, Prose, Section

COMPANY_OVERVIEW = Prose(
    title="About Northwind Robotics",
    subtitle="Autonomous robots for warehouses that never sleep",
    sections=(
        Section(
            "Who we are",
            (
                "Northwind Robotics designs and builds autonomous mobile robots and robotic "
                "picking arms for warehouses, grocery fulfilment centres and hospital "
                "pharmacies. The company was founded in 2014 in Eindhoven by Maren Holt "
                "(CEO) and Tobias Verbeek (CTO) and today employs about 420 people.",
                "Our robots move more than 2.3 million order lines every day at 61 customer "
                "sites in eleven countries.",
            ),
        ),
        Section(
            "Products",
            ("Three products work together on one fleet:",),
            bullets=(
                "Tern T2: an autonomous mobile robot that carries shelving units and pallets "
                "of up to 600 kg through mixed human and robot traffic.",
                "Heron P3: a picking arm with a vision system that picks up to 1,200 items "
                "per hour from totes into order boxes.",
                "Fleet Manager: the software that dispatches missions, plans traffic and "
                "reports throughput for every robot on a site.",
            ),
        ),
        Section(
            "Offices",
            (
                "Headquarters and the main engineering centre are in Eindhoven, the "
                "Netherlands. Sales and service teams work from Hamburg (Germany) and Austin, "
                "Texas (USA). Spare parts ship from our logistics hub in Venlo within 24 hours.",
            ),
        ),
        Section(
            "Sustainability",
            (
                "Every Tern T2 runs on a lithium iron phosphate battery that lasts at least "
                "4,000 charge cycles and is taken back for recycling at the end of its life. "
                "Our Eindhoven plant has run on renewable electricity since 2021.",
            ),
        ),
    ),
)

PRESS_RELEASE = Prose(
    title="Northwind Robotics launches the Heron P3 picking arm",
    subtitle="Eindhoven, 16 September 2025",
    sections=(
        Section(
            "Announcement",
            (
                "Northwind Robotics today announced the Heron P3, its third-generation "
                "robotic picking arm. The Heron P3 picks up to 1,200 items per hour, handles "
                "items from 5 g to 7 kg and recognises new products from a single photo, so "
                "customers no longer need to train the vision system per SKU.",
                '"Our customers asked for an arm that keeps up with their best pickers on the '
                'busiest day of the year," said Maren Holt, CEO of Northwind Robotics. '
                '"The Heron P3 does, and it works side by side with the Tern robots they '
                'already run."',
            ),
        ),
        Section(
            "Availability",
            (
                "The Heron P3 ships to customers from the first quarter of 2026. Existing "
                "Heron P2 customers can upgrade on site in one shift.",
            ),
            bullets=(
                "Pick rate: up to 1,200 items per hour",
                "Payload: 5 g to 7 kg",
                "Grippers: suction and two-finger, changed automatically",
                "Integration: Fleet Manager 4.2 or later",
            ),
        ),
        Section(
            "Press contact",
            ("Sanne de Wit, press@northwind-robotics.example, +31 40 555 0199",),
        ),
    ),
)

TERN_DATASHEET = Prose(
    title="Tern T2 Autonomous Mobile Robot: Data Sheet",
    subtitle="Revision 2025-06",
    sections=(
        Section(
            "Overview",
            (
                "The Tern T2 lifts and carries shelving units, carts and pallets through "
                "warehouses with people and forklifts around it. It navigates by lidar and "
                "camera without floor markers and is dispatched by Fleet Manager.",
            ),
        ),
        Section(
            "Specifications",
            table=(
                ("Property", "Value"),
                ("Payload", "600 kg"),
                ("Top speed", "2.0 m/s (1.2 m/s near people)"),
                ("Dimensions", "1,050 x 750 x 320 mm"),
                ("Battery", "LiFePO4, 48 V, 105 Ah"),
                ("Run time", "8 hours at typical duty"),
                ("Charging", "45 minutes to 80 percent on the docking station"),
                ("Safety", "PL d / SIL 2 safety lidar, emergency stop buttons on four sides"),
                ("Ingress protection", "IP54"),
                ("Operating temperature", "+5 to +40 degrees Celsius"),
            ),
        ),
        Section(
            "Connectivity",
            (
                "Wi-Fi 6 (802.11ax) with roaming across access points, or private 5G. "
                "Robots keep driving their current mission for up to 30 seconds without "
                "network and then stop safely.",
            ),
        ),
    ),
)

SUPPORT_AND_WARRANTY = Prose(
    title="Support and Warranty",
    sections=(
        Section(
            "Warranty",
            (
                "Every Tern and Heron robot comes with a 24-month warranty on parts and "
                "labour from the date of commissioning. Batteries are covered for 36 months "
                "or 4,000 charge cycles, whichever comes first.",
            ),
        ),
        Section(
            "Support plans",
            table=(
                ("Plan", "Hours", "Response time (critical)"),
                ("Standard", "Mon-Fri 08:00-18:00 CET", "4 hours"),
                ("Premium", "24/7", "1 hour"),
                ("Premium Plus", "24/7 with on-site engineer", "30 minutes"),
            ),
        ),
        Section(
            "Contact",
            (
                "Open a ticket at support.northwind-robotics.example or e-mail "
                "support@northwind-robotics.example. For robots that are down, call the "
                "hotline on +31 40 555 0100.",
            ),
        ),
    ),
)

FOLDER = Folder(
    path="public",
    collection="public",
    level=0,
    acl=("role:staff",),
    description="Public material: company overview, press releases, data sheets.",
    documents={
        "company-overview.html": COMPANY_OVERVIEW,
        "press-release-heron-p3.md": PRESS_RELEASE,
        "tern-t2-datasheet.pdf": TERN_DATASHEET,
        "support-and-warranty.txt": SUPPORT_AND_WARRANTY,
    },
)
