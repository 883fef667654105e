"""The monitoring files as Prometheus and Grafana read them: promtool checks the scrape
config and rules and runs the alert unit tests; the dashboard asks only for metrics that
windowpay exports."""

import json
import re
import subprocess
from pathlib import Path

import yaml
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
    assert "20 rules found" in promtool("check", "rules", "alerts.yml")


def test_the_alerts_fire_and_stay_silent_as_their_unit_tests_expect() -> None:
    out = promtool(
        "test", "rules", "alerts_test.yml", "alerts_silent_test.yml", cwd=MONITORING / "tests"
    )
    assert out.count("SUCCESS") == 2, out


# One failed reversal keeps its rate over [10m] above 0 for ten minutes, longer than the
# rule's `for: 5m`: no blip of it can stay silent (alerts_silent_test.yml says so too).
NO_SHORT_BLIP = {"WindowpayReversalErrors"}


def test_every_alert_has_cases_in_which_it_must_stay_silent() -> None:
    """Just under its threshold; and, with a `for:`, true for less than that, the
    condition shown to hold by an expression test in the same group."""
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    groups = yaml.safe_load((MONITORING / "tests/alerts_silent_test.yml").read_text())["tests"]
    silent = {
        case["alertname"]
        for group in groups
        for case in group["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    assert silent == {rule["alert"] for rule in rules}
    shown = {
        case["alertname"]
        for group in groups
        if group.get("promql_expr_test")
        for case in group["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    waiting = {rule["alert"] for rule in rules if "for" in rule}
    assert waiting - NO_SHORT_BLIP <= shown, waiting - NO_SHORT_BLIP - shown


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
