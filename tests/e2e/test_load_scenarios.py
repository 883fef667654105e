"""Locust smoke runs: every scenario, compressed to seconds, against the e2e deployment.

Each run must end with exit status 0, statistics in its CSV files, and the consistency
check finding no order charged twice and no attempt left unfinished. Then the checks
themselves are shown to fail: a threshold passed, and a double charge planted in a
sandbox ledger. These tests run last (see conftest): they leave the day busy."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path

import pytest

from loadtest.consistency import check
from loadtest.scenarios import registry
from orchestrator.access import client
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import eventually

pytestmark = pytest.mark.load

ROOT = Path(__file__).resolve().parent.parent.parent
SMOKE_S = 6.0  # each scenario's whole shape, compressed to about this long


async def locust(deployed: Deployed, csv_prefix: Path, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"),
        "--headless", "--only-summary", "--csv", str(csv_prefix), "-t", "30s",
        "--data-dir", str(deployed.data_dir), "--settle-seconds", "30", *options,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=100)
    assert process.returncode is not None
    return process.returncode, out.decode()


def stats(csv_prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("name", sorted(registry()))
async def test_a_compressed_scenario_passes_its_thresholds_and_the_consistency_check(
    deployed: Deployed, tmp_path: Path, name: str
) -> None:
    scenario = registry()[name]
    compression = SMOKE_S / scenario.stages[-1].until_s
    code, out = await locust(
        deployed, tmp_path / name, "--scenario", name, "--time-compression", f"{compression:.4f}"
    )
    assert code == 0, out
    assert f"windowpay {name}:" in out and " 0 consistency problems" in out, out
    rows = stats(tmp_path / name)
    assert int(rows["CreateOrder"]["Request Count"]) > 0
    assert int(rows["Pay"]["Request Count"]) > 0
    total = rows["Aggregated"]
    ratio = int(total["Failure Count"]) / int(total["Request Count"])
    assert ratio <= scenario.max_failure_ratio


async def test_a_scenario_selected_by_its_tag_fails_when_its_p99_passes_the_threshold(
    deployed: Deployed, tmp_path: Path
) -> None:
    code, out = await locust(
        deployed, tmp_path / "tagged", "--tags", "retry_storm",
        "--time-compression", "0.03", "--max-p99-ms", "0.001",
    )  # fmt: skip
    assert code == 1, out
    assert "windowpay retry_storm:" in out and "FAILED: p99" in out, out


async def test_the_consistency_check_finds_a_double_charge_and_an_unfinished_attempt(
    deployed: Deployed,
) -> None:
    providers = {c.value: u for c, u in deployed.sandboxes.base_urls.items()}
    order = await deployed.create(deployed.window(), "DOC-DLIC")
    declined = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.WECHAT, "3333")
    )
    paid = await deployed.terminal_of_order(order).Pay(deployed.pay_request(order, Channel.CASH))
    assert paid.state == pb.PAID
    address = deployed.server.address
    auditor = client.of_pki(deployed.pki_dir, "auditor")
    assert (
        await asyncio.to_thread(check, address, [order.order_id], providers, 120.0, auditor) == []
    )

    wechat = deployed.sandboxes.bank(Channel.WECHAT)
    attempt = declined.attempts[0].attempt_id
    wechat.alter(attempt, paid=True)  # the provider took the money after all
    try:
        problems = await asyncio.to_thread(
            check, address, [order.order_id], providers, 120.0, auditor
        )
    finally:
        wechat.alter(attempt, paid=False)
    assert problems == [
        f"{order.order_id}: charged {2 * order.amount_fen} fen for an order of {order.amount_fen}"
    ]

    waiting = await deployed.create(deployed.window(), "DOC-DLIC")
    request = deployed.pay_request(waiting, Channel.WECHAT, "2222")  # never confirms
    pending = deployed.terminal_for(request.terminal_id).Pay(request, timeout=30)
    await eventually(lambda: deployed.get(waiting.order_id), lambda o: o.state == pb.PAYING)
    problems = await asyncio.to_thread(check, address, [waiting.order_id], providers, 0.0, auditor)
    assert len(problems) == 1 and "attempts not final" in problems[0]
    assert (await pending).attempts[0].state == pb.REVERSED
