"""A real Prometheus (Debian's 2.42, `promtool` and `prometheus`) checks deploy/: the rule
and configuration files pass promtool, and a Prometheus scraping a real `kb serve` (after
the traffic of conftest.py) evaluates every dashboard query and every alert rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.observability.conftest import Served, port_in_range
from tests.observability.test_deploy import ALERTS, DASHBOARD, PROMETHEUS

pytestmark = pytest.mark.slow

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules_and_the_configuration(tmp_path: Path) -> None:
    rules = promtool("check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The configuration names the rules where compose mounts them; point it at the repo.
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["rule_files"] = [str(ALERTS)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(local))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # A broken rule is caught (the check is not vacuous).
    broken = tmp_path / "broken.yml"
    broken.write_text(
        ALERTS.read_text().replace("kb_policy_age_seconds >", "kb_policy_age_seconds >>")
    )
    assert promtool("check", "rules", str(broken)).returncode != 0


def _query(api: str, expr: str) -> dict[str, Any]:
    answer = httpx.get(f"{api}/api/v1/query", params={"query": expr}, timeout=30)
    data: dict[str, Any] = answer.json()
    return data


def test_prometheus_scrapes_kb_and_evaluates_dashboard_and_alerts(
    served: Served, tmp_path: Path
) -> None:
    target = urlsplit(served.url).netloc
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "kb-server",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port_in_range()
    api = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS_BIN,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # until kb has been scraped a few times (rate() needs two samples)
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                # 503 (plain text) until Prometheus has started: not ready yet.
                ready = httpx.get(f"{api}/-/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                up = _query(api, 'count_over_time(up{job="kb-server"}[1m])')
                result = up.get("data", {}).get("result", [])
                if result and float(result[0]["value"][1]) >= 4:
                    break
            time.sleep(0.5)
        assert _query(api, 'up{job="kb-server"}')["data"]["result"][0]["value"][1] == "1"

        dashboard = json.loads(DASHBOARD.read_text())
        empty = []
        for panel in (p for p in dashboard["panels"] if p["type"] != "row"):
            for target_ in panel["targets"]:
                answer = _query(api, target_["expr"])
                assert answer["status"] == "success", (panel["title"], answer)
                if not answer["data"]["result"]:
                    empty.append(panel["title"])
        # Series kb has after the fixture's traffic: these panels must show data.
        must_show = (
            "MCP requests by tool",
            "Search time per stage (mean)",
            "Documents per source",
            "Policy version",
            "Denied and not found",
        )
        for title in must_show:
            assert title not in empty, f"{title!r} shows no data"

        # Every alert rule evaluates without error, and none fires on a healthy server.
        deadline = time.monotonic() + 60
        while True:
            groups = httpx.get(f"{api}/api/v1/rules", timeout=30).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules):
                break
            assert time.monotonic() < deadline, rules
            time.sleep(0.5)
        expected = {
            r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
        }
        assert {r["name"] for r in rules} == expected
        assert [r["name"] for r in rules if r["health"] != "ok"] == []
        firing = [r["name"] for r in rules if r["state"] == "firing"]
        assert "KbServerDown" not in firing and "KbPolicyStale" not in firing, firing
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
