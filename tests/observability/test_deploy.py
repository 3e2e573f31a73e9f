"""deploy/: the Grafana dashboard and the alert rules name only metrics a real `kb serve`
exports (scraped after traffic, see conftest.py), and compose wires them in a profile."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.conftest import Served, sample_names, scrape

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/kb.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
DATASOURCE = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"

# Series Prometheus makes itself (not scraped from kb).
PROMETHEUS_OWN = {"up"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
# Exported families the dashboard does not chart (build metadata, the scrape's own cost).
NOT_CHARTED = {"kb_build_info", "kb_metrics_database_up", "kb_metrics_database_read_seconds",
               "kb_policy_reloads", "kb_source_enabled"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, strings removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end() :].lstrip()
        if rest.startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # a function call or an operator keyword
        names.add(m.group(0))
    return names


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, tool) (rate(kb_x_bucket{method="a b"}[5m])))'
        " / on (source) kb_y > 0.5 * kb_z and time() - up"
    )
    assert metric_names(expr) == {"kb_x_bucket", "kb_y", "kb_z", "up"}


def panels() -> list[dict[str, Any]]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [p for p in dash["panels"] if p["type"] != "row"]


def test_every_dashboard_query_names_an_exported_metric(served: Served) -> None:
    exported = sample_names(scrape(served.url))
    used: set[str] = set()
    for panel in panels():
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']!r}: no metric in {target['expr']!r}"
            unknown = names - exported - PROMETHEUS_OWN
            assert not unknown, f"panel {panel['title']!r} queries {unknown}, not exported"
            used |= names
    # The other way round: every family kb exports is on the dashboard (or listed above).
    families = {n for n in scrape(served.url) if n.startswith("kb_")}
    charted = {f for f in families if any(u == f or u.startswith(f + "_") for u in used)}
    assert families - charted - NOT_CHARTED == set()


def test_alert_rules_name_exported_metrics_and_are_documented(served: Served) -> None:
    exported = sample_names(scrape(served.url))
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert len(rules) >= 10
    operations = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        names = metric_names(rule["expr"])
        assert names and not (names - exported - PROMETHEUS_OWN), (rule["alert"], names)
        assert f"`{rule['alert']}`" in operations, f"{rule['alert']} not in docs/operations.md"


def test_prometheus_grafana_and_compose_fit_together(tmp_path: Path) -> None:
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    assert jobs["kb-server"]["metrics_path"] == "/metrics"
    assert jobs["kb-server"]["dns_sd_configs"][0]["port"] == 8000
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    assert {t["datasource"]["uid"] for p in panels() for t in p["targets"]} == {uid}

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["monitoring"], name
    mounts = compose["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert compose["worker"]["environment"]["KB_METRICS__WORKER_PORT"] == "9400"
    # The file still validates, with and without the profile.
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "KB_PUBLISH")}
    base = ["docker-compose", "-f", str(ROOT / "docker-compose.yml")]
    for extra in ([], ["--profile", "monitoring"]):
        done = subprocess.run(
            [*base, *extra, "config", "--services"],
            env={**env, "POSTGRES_PASSWORD": "x"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "server" in done.stdout.split()
        if extra:
            assert {"prometheus", "grafana"} <= set(done.stdout.split())
