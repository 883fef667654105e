"""A real Prometheus (Debian's, unpacked by `make tools`) scraping the e2e deployment
through the front door's service discovery, under traffic: every process is an up
target, every PromQL expression of the dashboard and of the alert rules returns data,
and planted faults (a stuck attempt, a provider answering 5xx) fire their alerts."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import free_port
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import eventually, prometheus_tool

MONITORING = Path(__file__).resolve().parent.parent.parent / "monitoring"
THRESHOLD = re.compile(r"^(?P<query>.*?)\s*(?:>|<|==|!=)\s*[\d.]+\s*$", re.DOTALL)


class Prometheus:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.base}{path}", params=params) as response:
            body = await response.json()
            assert body["status"] == "success", body
            return body["data"]

    async def query(self, expr: str) -> list[Any]:
        result: list[Any] = (await self.get("/api/v1/query", query=expr))["result"]
        return result

    async def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = (await self.get("/api/v1/targets"))["activeTargets"]
        return active

    async def firing(self) -> set[tuple[str, str]]:
        alerts = (await self.get("/api/v1/alerts"))["alerts"]
        return {
            (
                a["labels"]["alertname"],
                a["labels"].get("provider") or a["labels"].get("service_point", ""),
            )
            for a in alerts
            if a["state"] == "firing"
        }


@pytest.fixture
async def prometheus(deployed: Deployed, tmp_path: Path) -> AsyncIterator[Prometheus]:
    rules = tmp_path / "alerts.yml"
    # The same rules, with their `for` shortened so that a test need not wait minutes.
    rules.write_text(re.sub(r"\bfor: \S+", "for: 1s", (MONITORING / "alerts.yml").read_text()))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "windowpay",
                        "http_sd_configs": [
                            {
                                "url": f"http://{deployed.server.metrics_address}/sd",
                                "refresh_interval": "1s",
                            }
                        ],
                    }
                ],
            }
        )
    )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        prometheus_tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            client = Prometheus(f"http://127.0.0.1:{port}", session)

            async def ready() -> bool:
                try:
                    async with session.get(f"{client.base}/-/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, bool, within=30)
            await eventually(client.targets, every_process_up, within=60)
            yield client
    finally:
        process.terminate()
        await process.wait()


def every_process_up(active: list[dict[str, Any]]) -> bool:
    """Every target up: one front door, the three service-point actors, the issuer."""
    up = [t for t in active if t["health"] == "up"]
    jobs = [t["labels"]["job"] for t in up]
    return (
        len(up) == len(active)
        and jobs.count("windowpay-frontdoor") == 1
        and jobs.count("windowpay-servicepoint") == 3
        and jobs.count("windowpay-receipts") == 1
    )


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana/dashboards/windowpay.json").read_text())
    return [
        t["expr"].replace("$service_point", ".*").replace("$provider", ".*")
        for panel in dashboard["panels"]
        for t in panel.get("targets", [])
    ]


def rule_queries() -> list[str]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    queries = []
    for rule in (r for g in groups for r in g["rules"]):
        match = THRESHOLD.match(rule["expr"].strip())
        assert match, f"{rule['alert']}: expected '<query> <op> <threshold>'"
        queries.append(match.group("query"))
    return queries


async def traffic(deployed: Deployed) -> None:
    """A bit of everything the dashboards and rules look at."""
    for channel, ending in [
        (Channel.WECHAT, "0000"), (Channel.ALIPAY, "1111"), (Channel.UNIONPAY, "0000"),
        (Channel.WECHAT, "2222"), (Channel.ALIPAY, "6666"), (Channel.CASH, "0000"),
    ]:  # fmt: skip
        order = await deployed.create(deployed.window())
        request = deployed.pay_request(order, channel, ending)
        paid = await deployed.terminal_for(request.terminal_id).Pay(request, timeout=30)
        await deployed.terminal_for(request.terminal_id).Pay(request, timeout=30)  # a replay
        if paid.state == pb.PAID:
            await deployed.terminal_of_order(order).Refund(
                deployed.refund_request(order, 100, "r"), timeout=30
            )
    await deployed.business.GetOrder(pb.GetOrderRequest(order_id=order.order_id))
    await deployed.business.CancelOrder(
        pb.CancelOrderRequest(
            request_id=uuid.uuid4().hex,
            order_id=(await deployed.create(deployed.window())).order_id,
        )
    )
    # A late success: the reversal is refused, then the payer's payment shows up.
    bank = deployed.sandboxes.bank(Channel.WECHAT)
    order = await deployed.create(deployed.window())
    bank.faults = {"reverse"}
    try:
        first = await deployed.terminal_of_order(order).Pay(
            deployed.pay_request(order, Channel.WECHAT, "2222"), timeout=30
        )
    finally:
        bank.faults = set()
    bank.confirm(first.attempts[0].attempt_id)
    await eventually(
        lambda: deployed.get(order.order_id),
        lambda o: o.attempts[0].state == pb.LATE_SUCCESS_REFUNDED,
    )
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "reconcile", "--date", today,
        "--data-dir", str(deployed.data_dir),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(process.wait(), 120) in (0, 1)


async def test_prometheus_sees_every_process_and_every_query_has_data(
    deployed: Deployed, prometheus: Prometheus
) -> None:
    assert every_process_up(await prometheus.targets())
    await traffic(deployed)

    expressions = dashboard_exprs() + rule_queries()

    async def empty() -> list[str]:
        return [e for e in expressions if not await prometheus.query(e)]

    missing = await eventually(empty, lambda m: not m, within=30)
    assert missing == []


async def test_planted_faults_fire_their_alerts(deployed: Deployed, prometheus: Prometheus) -> None:
    # A provider answering 5xx to every pay call and every query. (Alipay: its cancel of
    # a trade it never made is done at once; WeChat's reverse is asked again while the
    # payment code may still be used, past this test's patience.)
    errors = deployed.sandboxes.bank(Channel.ALIPAY)
    errors.faults = {"pay", "query"}
    try:
        for _ in range(3):
            order = await deployed.create(deployed.window())
            failed = await deployed.terminal_of_order(order).Pay(
                deployed.pay_request(order, Channel.ALIPAY), timeout=30
            )
            # An unsigned 5xx may hide a payment: queried (in vain), then cancelled.
            assert failed.attempts[0].state == pb.REVERSED
        await eventually(
            prometheus.firing, lambda f: ("WindowpayProviderErrors", "ALIPAY") in f, within=30
        )
    finally:
        errors.faults = set()

    # A payment stuck past its deadline: the provider answers neither queries nor reversals.
    alipay = deployed.sandboxes.bank(Channel.ALIPAY)
    order = await deployed.create(deployed.window())
    sp = order.service_point_id
    alipay.faults = {"query", "reverse"}
    try:
        stuck = asyncio.ensure_future(
            deployed.terminal_of_order(order).Pay(
                deployed.pay_request(order, Channel.ALIPAY, "2222"), timeout=60
            )
        )
        await eventually(
            prometheus.firing, lambda f: ("WindowpayAttemptsStuck", sp) in f, within=30
        )
    finally:
        alipay.faults = set()
    assert (await stuck).attempts[0].state == pb.REVERSED
    assert ("WindowpayDown", "") not in await prometheus.firing()
