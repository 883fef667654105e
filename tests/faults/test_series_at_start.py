"""Issue 28: every series the Grafana dashboard and the alert rules query exists from the
first scrape of a freshly started service, before any payment, refund or reconciliation
(a labelled counter is made at zero for each of its known label values, as Prometheus
advises), so that a panel reads 0 rather than "no data" and `rate()` has a start.

The queries are read from monitoring/ and parsed: each selector's metric name and label
matchers are looked for among the samples of every process the front door's service
discovery lists (the front door, each service-point actor, the receipt issuer, the
drainer)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.telemetry import discovered_targets
from tests.faults.sandboxed import SandboxedService, sandboxed_service
from tests.support import eventually

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
JOBS = {"windowpay-frontdoor", "windowpay-servicepoint", "windowpay-receipts", "windowpay-drainer"}

# ---- reading PromQL ------------------------------------------------------------------

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless"}  # fmt: skip
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SELECTOR = re.compile(rf"(?P<name>{NAME})\s*(?P<matchers>\{{[^}}]*\}})?(?P<call>\s*\()?")
MATCHER = re.compile(r'(?P<label>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)")
RANGE = re.compile(r"\[[^\]]*\]")
LABEL_VALUES = re.compile(rf"label_values\((?P<selector>{NAME}(?:\{{[^}}]*\}})?),\s*(\w+)\)")


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)
    needs_label: str = ""  # label_values(metric, label): the label must be there too

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if name != self.name or (self.needs_label and self.needs_label not in labels):
            return False
        return all(_holds(labels.get(label, ""), op, value) for label, op, value in self.matchers)

    def __str__(self) -> str:
        inner = ", ".join(f'{label}{op}"{value}"' for label, op, value in self.matchers)
        return f"{self.name}{{{inner}}}" + (f" with {self.needs_label}" if self.needs_label else "")


def _holds(actual: str, op: str, value: str) -> bool:
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    found = re.fullmatch(value, actual) is not None  # PromQL regexes are anchored
    return found if op == "=~" else not found


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression (Grafana's variables match anything)."""
    expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
    found = [
        Selector(*_selector(m.group("selector")), needs_label=m.group(2))
        for m in LABEL_VALUES.finditer(expr)
    ]
    expr = RANGE.sub("", GROUPING.sub("", LABEL_VALUES.sub("", expr)))
    for m in SELECTOR.finditer(expr):
        if m.group("call") or m.group("name") in KEYWORDS:
            continue  # a function, or a word of the language
        found.append(Selector(*_selector(m.group("name") + (m.group("matchers") or ""))))
    return found


def _selector(text: str) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    name, _, inner = text.partition("{")
    matchers = tuple((m["label"], m["op"], m["value"]) for m in MATCHER.finditer(inner))
    return name.strip(), matchers


def monitored_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana/dashboards/windowpay.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    exprs += [rule["expr"] for group in groups for rule in group["rules"]]
    return exprs


def test_the_reader_finds_every_metric_the_monitoring_files_name() -> None:
    """A check of the parser itself: nothing named in monitoring/ escapes it."""
    exprs = monitored_expressions()
    named = {n for e in exprs for n in re.findall(r"\b(windowpay_[a-z_]+|up)\b", e)}
    parsed = {s.name for e in exprs for s in selectors(e)}
    assert parsed == named
    assert Selector(*_selector('up{job=~"windowpay.*"}')) in selectors(
        'count by (job) (up{job=~"windowpay.*"} == 1)'
    )
    [quantile] = selectors(
        "histogram_quantile(0.99, sum by (le, method) (rate(windowpay_grpc_request_duration_"
        'seconds_bucket{method=~"CreateOrder|GetOrder"}[5m]))) > 0.25'
    )
    assert quantile.matches(
        "windowpay_grpc_request_duration_seconds_bucket", {"method": "GetOrder", "le": "1"}
    )
    assert not quantile.matches("windowpay_grpc_request_duration_seconds_bucket", {"method": "Pay"})


# ---- the fresh service --------------------------------------------------------------


@pytest.fixture(scope="module")
async def fresh(
    work_dir: Path, postgres_server: EmbeddedPostgres
) -> AsyncIterator[SandboxedService]:
    async with sandboxed_service(work_dir, postgres_server, "series") as service:
        yield service


Sample = tuple[str, dict[str, str]]


async def scrape(service: SandboxedService) -> tuple[list[Sample], list[dict[str, str]]]:
    """Every sample of every process listed for scraping, and each target's labels (what
    Prometheus adds as `up`)."""
    redis = Redis.from_url(service.redis.url)
    try:
        groups = await discovered_targets(redis)
    finally:
        await redis.aclose()
    samples: list[Sample] = []
    targets: list[dict[str, str]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for group in groups:
            for address in group["targets"]:
                async with session.get(f"http://{address}/metrics") as answer:
                    text = await answer.text()
                targets.append({**group["labels"], "instance": address})
                for family in text_string_to_metric_families(text):
                    samples += [(s.name, s.labels) for s in family.samples]
    return samples, targets


def _every_process(scraped: tuple[list[Sample], list[dict[str, str]]]) -> bool:
    return {t["job"] for t in scraped[1]} >= JOBS


async def test_every_queried_series_is_there_at_the_first_scrape(fresh: SandboxedService) -> None:
    # (Waiting only for every process to be listed: no payment, refund or run happens.)
    samples, targets = await eventually(lambda: scrape(fresh), _every_process, within=120)
    missing = []
    for expr in monitored_expressions():
        for selector in selectors(expr):
            if selector.name == "up":  # made by Prometheus for each target it scrapes
                found = any(selector.matches("up", t) for t in targets)
            else:
                found = any(selector.matches(name, labels) for name, labels in samples)
            if not found:
                missing.append(f"{selector}  (in {' '.join(expr.split())[:80]})")
    assert missing == []
