"""The identifier set: generated operations documents full of codes, with one answer per query.

``python -m bench._identifiers`` rewrites bench/data/identifiers.json (deterministic: seed 14).
Every document reads like its neighbours (same kinds of incidents, releases, runbooks,
people, settings), so meaning alone cannot tell them apart; what sets the answer apart is
an identifier: an error code, ticket, version, tool or config name, CamelCase class,
e-mail address, part number or person's name. Other documents carry near misses of the
same identifier (ERR-4031 vs ERR-4013, v2.3.1 vs v2.3.0), so matching a fragment is not
enough either.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "identifiers.json"
SEED = 14

FILLER = [
    "The on-call engineer confirmed the impact on the warehouse fleet before escalating.",
    "Operators saw robots pause at the charging stations while the queue drained.",
    "The change was reviewed by the platform team and rolled out region by region.",
    "Customers in the Rotterdam and Lyon sites reported slower picking for an hour.",
    "Monitoring dashboards showed a spike in retries from the fleet manager service.",
    "A follow-up ticket tracks the remaining clean-up work for the next sprint.",
    "Support staff were asked to point affected customers to the status page.",
    "The runbook was updated so the next responder can act without waiting for approval.",
    "Logs were kept for thirty days in object storage for the postmortem review.",
    "Firmware on the affected robots was checked against the approved release matrix.",
]

FIRST = ["Dagny", "Ivo", "Marta", "Tomasz", "Ingrid", "Kofi", "Lena", "Rafael", "Sanne", "Yuki"]
LAST = ["Halvorsen", "Brandt", "Kowalski", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Varga"]
TOOLS = [
    "pg_dump",
    "pg_restore",
    "kubectl_drain",
    "fleetctl",
    "rsync_mirror",
    "etcd_snapshot",
    "dock_calibrate",
    "lidar_reset",
    "mapsync",
    "route_replay",
]
WORDS = ["Payment", "Gateway", "Route", "Planner", "Charge", "Dock", "Battery", "Sensor", "Map"]


def _code(rng: random.Random, kind: str) -> str:
    if kind == "error":
        return f"ERR-{rng.randint(1000, 9999)}"
    if kind == "incident":
        return f"INC-2025-{rng.randint(1, 999):03d}"
    if kind == "version":
        return f"v{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 19)}"
    if kind == "part":
        return f"{rng.randint(10, 99)}-{rng.randint(1000, 9999)}-{rng.randint(1, 9)}"
    if kind == "class":
        a, b = rng.sample(WORDS, 2)
        return f"{a}{b}{rng.choice(['Timeout', 'Overflow', 'Mismatch'])}Exception"
    if kind == "config":
        a, b = rng.sample(["max", "retry", "dock", "queue", "battery", "route", "scan"], 2)
        return f"{a}_{b}_{rng.choice(['limit', 'interval_ms', 'threshold', 'pool_size'])}"
    if kind == "email":
        return f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@northwind.example"
    if kind == "person":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return rng.choice(TOOLS)


def _near_miss(code: str, rng: random.Random) -> str:
    """A different identifier that shares most characters with ``code``."""
    chars = list(code)
    digits = [i for i, c in enumerate(chars) if c.isdigit()]
    if len(digits) >= 2:
        i, j = rng.sample(digits, 2)
        chars[i], chars[j] = chars[j], chars[i]
        if "".join(chars) == code:
            chars[digits[-1]] = str((int(chars[digits[-1]]) + 1) % 10)
        return "".join(chars)
    return code + "2"


TEMPLATES = {
    "error": ("Error {c} in the fleet manager", "Robots report {c} when a route lock expires."),
    "incident": ("Postmortem {c}", "Incident {c} stopped outbound picking for forty minutes."),
    "version": ("Release notes {c}", "Firmware {c} changes how robots re-plan around blockages."),
    "part": ("Spare part {c}", "Part number {c} is the drive wheel assembly for Tern robots."),
    "class": ("Exception {c}", "The service throws {c} when the dock controller is too slow."),
    "config": ("Setting {c}", "The key {c} in fleet.yaml bounds how long robots wait."),
    "email": ("Contact {c}", "Write to {c} for escalations about warehouse robots."),
    "person": ("Owner: {c}", "{c} owns the charging station rollout and signs off changes."),
    "tool": ("Runbook: {c}", "Run {c} before maintenance; it takes about ten minutes."),
}
QUESTIONS = {
    "error": ["{c}", "what does {c} mean", "robots failing with {c}"],
    "incident": ["{c}", "postmortem of {c}", "what happened in {c}"],
    "version": ["firmware {c}", "release notes {c}", "what changed in {c}"],
    "part": ["{c}", "part number {c}", "order spare {c}"],
    "class": ["{c}", "why is {c} thrown", "{c} dock controller"],
    "config": ["{c}", "what does {c} do", "default of {c}"],
    "email": ["{c}", "who is {c}", "contact {c}"],
    "person": ["{c}", "what does {c} own", "{c} responsibilities"],
    "tool": ["how to run {c}", "{c} before maintenance", "{c} runbook"],
}


def generate(n_docs: int = 72) -> dict[str, Any]:
    rng = random.Random(SEED)
    kinds = list(TEMPLATES)
    docs: list[dict[str, str]] = []
    queries: list[dict[str, str]] = []
    used: set[str] = set()
    for i in range(n_docs):
        kind = kinds[i % len(kinds)]
        code = _code(rng, kind)
        while code in used or code.lower() in {u.lower() for u in used}:
            code = _code(rng, kind)
        used.add(code)
        docs.append({"id": f"ident-{i:03d}", "kind": kind, "code": code})
    answers = {d["code"] for d in docs}
    for d in docs:
        rng2 = random.Random(f"{SEED}-{d['id']}")
        title, lead = TEMPLATES[d["kind"]]
        # Near misses of other documents' identifiers of the same kind, never an answer.
        same = [o["code"] for o in docs if o["kind"] == d["kind"] and o["code"] != d["code"]]
        near = (_near_miss(c, rng2) for c in rng2.sample(same, 2))
        misses = [m for m in near if m not in answers]
        body = [lead.format(c=d["code"]), *rng2.sample(FILLER, 4)]
        if misses:
            body.insert(2, "Not to be confused with " + " or ".join(misses) + ".")
        d["title"] = title.format(c=d["code"])
        d["text"] = " ".join(body)
        question = rng2.choice(QUESTIONS[d["kind"]]).format(c=d["code"])
        queries.append({"query": question, "answer": d["id"]})
    return {"seed": SEED, "documents": docs, "queries": queries}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


if __name__ == "__main__":
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(generate(), indent=1) + "\n")
    print(f"wrote {DATA}")
