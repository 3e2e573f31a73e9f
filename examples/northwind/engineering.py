"""docs/engineering: architecture, incidents and runbooks. Readable by group:eng."""

from __future__ import annotations

from northwind.model import Deck, Folder, Prose, Section, Sheet, Slide, Workbook

ARCHITECTURE = Prose(
    title="Fleet Manager Architecture",
    subtitle="Engineering design document, version 4.2",
    author="Tobias Verbeek",
    sections=(
        Section(
            "Overview",
            (
                "Fleet Manager coordinates every robot on a customer site. It turns orders "
                "from the customer's warehouse management system (WMS) into missions, "
                "assigns missions to robots, reserves the aisles each robot will drive "
                "through and streams telemetry to the cloud for reporting.",
            ),
        ),
        Section(
            "Components",
            ("Fleet Manager runs as five services on an on-site server cluster:",),
            table=(
                ("Service", "Responsibility", "Owning team"),
                ("dispatcher", "Assigns missions to robots by cost", "Fleet Core"),
                ("traffic-controller", "Reserves map segments, prevents deadlocks", "Fleet Core"),
                ("map-service", "Serves the site map and hot-reloads edits", "Navigation"),
                ("wms-bridge", "Translates WMS orders into missions", "Integrations"),
                ("telemetry-uplink", "Streams robot state to the cloud", "Platform"),
            ),
        ),
        Section(
            "Traffic control",
            (
                "The traffic controller divides the site map into segments of about two "
                "metres. A robot may enter a segment only while it holds the segment's "
                "reservation. Reservations are granted in a global order to avoid circular "
                "waits and expire after 20 seconds unless renewed.",
                "Since incident 2025-014 every map hot-reload revalidates all outstanding "
                "reservations against the new segment ids.",
            ),
        ),
        Section(
            "Deployment",
            (
                "Each site runs three on-site nodes with Kubernetes (k3s). Releases go out "
                "through the firmware and software release train described in the release "
                "process page. The cloud side runs in eu-west and us-east.",
            ),
        ),
        Section(
            "Failure modes",
            bullets=(
                "Network loss: robots finish their current segment and stop within 30 s.",
                "Dispatcher crash: missions in flight continue; new missions wait for the "
                "standby dispatcher, which takes over within 10 s.",
                "Map-service unavailable: the last map stays loaded; edits are refused.",
            ),
        ),
    ),
)

POSTMORTEM = Prose(
    title="Postmortem 2025-014: traffic deadlock at Bluefin Rotterdam",
    subtitle="Severity SEV1. Status: action items in progress.",
    author="Priya Raman",
    sections=(
        Section(
            "Summary",
            (
                "On 21 August 2025 at 14:12 CEST, 38 Tern robots at the Bluefin Logistics "
                "site in Rotterdam stopped in a traffic deadlock for 47 minutes. About 9,400 "
                "order lines were delayed; no one was hurt and no goods were damaged.",
            ),
        ),
        Section(
            "Root cause",
            (
                "A site engineer published a map edit while robots were driving. The map "
                "service hot-reloaded the map and renumbered 112 segments. The traffic "
                "controller kept reservations under the old segment ids, so the released "
                "segments were never freed: a reservation lock leak. Robots waiting for "
                "those segments formed a circular wait.",
            ),
        ),
        Section(
            "Timeline",
            table=(
                ("Time (CEST)", "Event"),
                ("14:12", "Map edit published; first robots stop"),
                ("14:19", "FleetDispatchLatencyHigh alert pages the on-call engineer"),
                ("14:31", "Incident commander declares SEV1"),
                ("14:52", "Traffic controller restarted with reservations cleared"),
                ("14:59", "All robots moving; backlog cleared by 16:40"),
            ),
        ),
        Section(
            "Action items",
            bullets=(
                "Revalidate reservations on every map reload (done in Fleet Manager 4.2.1).",
                "Refuse map edits that renumber segments while robots are moving.",
                "Add a deadlock detector that alerts within 60 seconds.",
                "Add a runbook entry for clearing reservations safely.",
            ),
        ),
    ),
)

RUNBOOK = Prose(
    title="On-call runbook: Fleet Manager",
    sections=(
        Section(
            "Rotation",
            (
                "Fleet Core and Navigation share one weekly on-call rotation that starts on "
                "Monday at 09:00 CET. The secondary on-call is the previous week's primary.",
            ),
        ),
        Section(
            "Severity levels",
            bullets=(
                "SEV1: a customer site cannot ship orders. Page the incident commander "
                "within 5 minutes and open a bridge call.",
                "SEV2: throughput below 70 percent of plan. Fix within 4 hours.",
                "SEV3: a single robot or a reporting problem. Next business day.",
            ),
        ),
        Section(
            "Common alerts",
            bullets=(
                "FleetDispatchLatencyHigh: dispatch takes over 2 s. Check traffic-controller "
                "reservations first; a stuck reservation looks exactly like this.",
                "BatteryTelemetryStale: a robot sent no battery reading for 5 minutes. "
                "Usually Wi-Fi roaming; ask the site to check the access point.",
                "MapReloadFailed: the map edit is invalid. Roll back from map-service history.",
            ),
        ),
        Section(
            "Clearing reservations",
            (
                "Pause the site from the Fleet Manager console, wait until every robot "
                "reports idle, then run: fleetctl traffic clear --site SITE --confirm. "
                "Resume the site and watch dispatch latency for 15 minutes.",
            ),
        ),
    ),
)

RELEASE_PROCESS = Prose(
    title="Release process for robot firmware and Fleet Manager",
    sections=(
        Section(
            "Release trains",
            (
                "Firmware and Fleet Manager ship on a four-week release train. The branch "
                "is cut on the first Monday; two weeks of hardware-in-the-loop testing "
                "follow; release candidates go to canary sites in week three.",
            ),
        ),
        Section(
            "Canary sites",
            (
                "Our own Eindhoven test warehouse and two customer sites that opted in "
                "(Kestrel Grocers Utrecht and Ostara Pharma Leiden) run every release "
                "candidate for at least five working days before general rollout.",
            ),
        ),
        Section(
            "Rollback",
            (
                "Every site keeps the previous release on its nodes. Rolling back takes one "
                "command and under ten minutes; robots finish their missions first.",
            ),
        ),
    ),
)

TEST_MATRIX = Workbook(
    title="Firmware test matrix",
    sheets=(
        Sheet(
            "results",
            (
                ("firmware_version", "robot_model", "test_suite", "passed", "failed", "run_date"),
                ("7.4.0", "Tern T2", "navigation-regression", 412, 0, "2025-09-02"),
                ("7.4.0", "Tern T2", "safety-stop", 96, 0, "2025-09-02"),
                ("7.4.0", "Tern T2", "battery-endurance", 12, 1, "2025-09-03"),
                ("7.4.0", "Heron P3", "grasp-accuracy", 880, 7, "2025-09-03"),
                ("7.4.1", "Tern T2", "battery-endurance", 13, 0, "2025-09-10"),
                ("7.4.1", "Heron P3", "grasp-accuracy", 886, 1, "2025-09-10"),
                ("7.4.1", "Heron P3", "vision-new-sku", 240, 2, "2025-09-11"),
            ),
        ),
    ),
)

ROADMAP = Deck(
    title="Navigation roadmap 2026",
    subtitle="Navigation team, October 2025",
    author="Lena Brandt",
    slides=(
        Slide(
            "Where we are",
            (
                "Lidar + camera localisation on every Tern T2",
                "Median localisation error 1.8 cm",
                "Deadlock incidents: 3 in 2025, all map-reload related",
            ),
            notes="Open with the Rotterdam incident; it is why reservation safety leads the plan.",
        ),
        Slide(
            "2026 priorities",
            (
                "Q1: reservation revalidation and deadlock detector",
                "Q2: shared aisles with forklifts (speed zones)",
                "Q3: multi-floor sites with lifts",
            ),
            notes=(
                "Multi-floor is the most requested feature from sales; it needs the lift "
                "integration API that Integrations owns, so we depend on them in Q2."
            ),
        ),
        Slide(
            "Asks",
            ("Two more engineers for the deadlock detector", "A second test warehouse floor"),
            notes="Headcount is in the 2026 budget request; facilities is pricing the floor.",
        ),
    ),
)

FOLDER = Folder(
    path="engineering",
    collection="engineering",
    level=1,
    acl=("group:eng",),
    description="Engineering: architecture, postmortems, runbooks, release process.",
    documents={
        "fleet-manager-architecture.docx": ARCHITECTURE,
        "postmortem-2025-014-traffic-deadlock.md": POSTMORTEM,
        "on-call-runbook.txt": RUNBOOK,
        "release-process.html": RELEASE_PROCESS,
        "firmware-test-matrix.csv": TEST_MATRIX,
        "navigation-roadmap-2026.pptx": ROADMAP,
    },
)
