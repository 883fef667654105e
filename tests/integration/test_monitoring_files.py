"""The monitoring files as Prometheus and Grafana read them: promtool checks the scrape
config and rules and runs the alert unit tests; the dashboard asks only for metrics that
windowpay exports."""

import json
import re
import subprocess
from pathlib import Path

from prometheus_client import REGISTRY

import orchestrator.metrics
import orchestrator.record.metrics  # noqa: F401  (and the drainer's)
from tests.support import prometheus_tool

MONITORING = Path(__file__).resolve().parent.parent.parent / "monitoring"
SCRAPE_TIME_GAUGES = {  # exported by collectors at scrape time, not in the registry
    "windowpay_attempts_in_flight",
    "windowpay_oldest_attempt_age_seconds",
    "windowpay_attempts_past_deadline",
    "windowpay_live_orders_missing",
}


def promtool(*args: str, cwd: Path = MONITORING) -> str:
    done = subprocess.run(
        [prometheus_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_scrape_config_and_rules_are_valid() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "16 rules found" in promtool("check", "rules", "alerts.yml")


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml", cwd=MONITORING / "tests")


SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def exported_names() -> set[str]:
    names = set(SCRAPE_TIME_GAUGES) | {"up"}
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, [""]))
    return names


def test_the_dashboard_asks_only_for_exported_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana/dashboards/windowpay.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 25
    known = exported_names()
    for expr in exprs:
        for name in re.findall(r"\b(windowpay_[a-z_]+|up)\b", expr):
            assert name in known, f"{name} in {expr!r} is not exported"
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert titles == {"Overview", "Per service point", "Per provider"}


def test_the_rules_ask_only_for_exported_metrics() -> None:
    known = exported_names()
    for name in re.findall(r"\b(windowpay_[a-z_]+)\b", (MONITORING / "alerts.yml").read_text()):
        assert name in known, name
