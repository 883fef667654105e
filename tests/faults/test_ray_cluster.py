"""windowpay on a Ray cluster of two nodes, and a worker node lost under load.

The cluster is Ray's own multi-node facility (tests/faults/ray_cluster.py, in a child
process); `windowpay serve --ray-address` joins it from the head node, with
`actor_placement = "spread"`, so the service-point actors are spread over both nodes.
Every window takes payments one after the other (each order paid through a sandbox or in
cash, as the fault tier's mix) while the worker node is killed (SIGKILL of its raylet and
every process of it, as when a host is lost). Then:

* the serving process goes on (its node is alive); the lost node's actors are restarted
  on the head by Ray, and recover their service points from Redis;
* every window takes payments again, and the windows whose actors were on the head never
  answered anything but their normal answer;
* terminals saw UNAVAILABLE (and resent the same request) or their normal answer, never
  another code;
* every order is settled as the sandbox ledgers recorded it, and no one is charged twice.

The time each window took to pay again is measured and reported (fault
"4-ray-worker-node-lost" in var/faults-report.json); docs/SCALING.md gives the figures.
No time is asserted: on a shared two-core machine that measures the neighbours."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.keys import SANDBOX_SIGNER
from orchestrator.config import Config, parse_config
from orchestrator.embedded_redis import EmbeddedRedis, free_port
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.record.embedded import EmbeddedPostgres
from tests.faults.conftest import VAR
from tests.faults.load import (
    MIX,
    Clients,
    Payment,
    Tally,
    checked,
    double_charges,
    retrying,
    settle,
)
from tests.faults.served import Served
from tests.support import eventually, small_config_data

ROOT = Path(__file__).resolve().parents[2]
REPORT = VAR / "faults-report.json"


@dataclass
class RayCluster:
    """The child process holding the cluster."""

    process: subprocess.Popen[str]
    address: str
    worker: str  # the worker node's id

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the Ray cluster's process ended ({self.process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.answer()


@pytest.fixture(scope="module")
def ray_cluster(work_dir: Path) -> Iterator[RayCluster]:
    log = (work_dir / "ray-cluster.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.ray_cluster"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        cluster = RayCluster(process, "", "")
        first = cluster.answer()
        cluster.address, cluster.worker = first["address"], first["worker"]
        yield cluster
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the child shuts the cluster down
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


@dataclass
class ClusterStack:
    config: Config
    data_dir: Path
    sandboxes: Sandboxes
    served: Served
    cluster: RayCluster

    @property
    def windows(self) -> list[str]:
        return sorted(self.config.deployment.window_service_point)

    @property
    def terminals(self) -> dict[str, str]:
        return {w: t for t, w in self.config.deployment.terminal_window.items()}


@pytest.fixture(scope="module")
async def cluster_stack(
    ray_cluster: RayCluster, postgres_server: EmbeddedPostgres, work_dir: Path
) -> AsyncIterator[ClusterStack]:
    work = work_dir / "cluster"
    redis = EmbeddedRedis(work / "redis", appendfsync="always")
    redis.start()
    data = small_config_data(
        prefix="K",
        service_points=4,
        windows=2,
        pay_hold_s=30,
        expiry_sweep_interval_s=5,
        actor_placement="spread",
    )
    # The settling reads many orders at once: no caller is limited here.
    data["access"]["limits"].update(
        {f"{role}_{kind}": 100_000 for role in ("terminal", "business", "other")
         for kind in ("rate", "burst")}
    )  # fmt: skip
    data_dir = work / "data"
    keys_dir = data_dir / "keys"
    config = parse_config(data, "cluster config")
    sandboxes = await start_sandboxes(config, keys_dir)
    served: Served | None = None
    try:
        for channel, url in sandboxes.base_urls.items():
            data["providers"].setdefault(channel.value, {})["base_url"] = url
        data["providers"]["UNIONPAY"]["signer_name"] = SANDBOX_SIGNER
        data["providers"]["keys_dir"] = str(keys_dir)
        config_path = data_dir / "windowpay.toml"
        config_path.write_text(tomli_w.dumps(data))
        config = parse_config(data, str(config_path))
        database_url = postgres_server.create_database(f"cluster_{uuid.uuid4().hex[:8]}")
        served = Served(config_path, redis.url, database_url, data_dir, free_port())
        served.args = ["--ray-address", ray_cluster.address]
        await served.supervised_start()
        yield ClusterStack(config, data_dir, sandboxes, served, ray_cluster)
    finally:
        if served is not None:
            served.stop()
        await sandboxes.stop()
        redis.stop()


@dataclass
class Window:
    """One window's payers, one after the other, and when each was paid."""

    window: str
    terminal: str
    payments: list[Payment] = field(default_factory=list)
    paid_at: list[float] = field(default_factory=list)


async def keep_paying(
    clients: Clients, window: Window, plans: Iterator[Any], tally: Tally, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        request = pb.CreateOrderRequest(
            request_id=uuid.uuid4().hex,
            business_no=f"K-{uuid.uuid4().hex[:12]}",
            window_id=window.window,
            payer_name="赵六",
            lines=[pb.OrderLine(fee_code="DOC-DLIC", quantity=1)],
        )
        order = await retrying(
            lambda r=request: clients.business.CreateOrder(r, timeout=15), within=120, tally=tally
        )
        channel, ending = next(plans)
        payment = Payment(order, window.terminal, channel, ending)
        window.payments.append(payment)
        payment.answer = await retrying(
            lambda p=payment: clients.terminal.Pay(p.request(), timeout=15), within=120, tally=tally
        )
        window.paid_at.append(time.time())


def placed(cluster: RayCluster) -> dict[str, str]:
    """Each live service-point actor's node."""
    nodes: dict[str, str] = cluster.ask("where")["actors"]
    return {name: node for name, node in nodes.items() if name.startswith("sp-")}


async def test_a_lost_worker_node_stops_only_its_windows_and_loses_nothing(
    cluster_stack: ClusterStack,
) -> None:
    stack = cluster_stack
    cluster = stack.cluster
    before = placed(cluster)
    on_worker = {name for name, node in before.items() if node == cluster.worker}
    # Spread: both nodes hold service points.
    print(f"\nplaced: {before}, worker node {cluster.worker}")
    assert on_worker and on_worker != set(before), before
    lost_windows = {
        w
        for w, sp in stack.config.deployment.window_service_point.items()
        if f"sp-{sp}" in on_worker
    }
    clients = Clients(stack.data_dir)
    tally = Tally()
    stop = asyncio.Event()
    plans = itertools.cycle([plan for plan in MIX if plan[1] in ("0000", "1111", "2222")])
    windows = [Window(w, stack.terminals[w]) for w in stack.windows]
    try:
        paying = [
            asyncio.ensure_future(keep_paying(clients, w, plans, tally, stop)) for w in windows
        ]

        async def fewest_paid() -> int:
            return min(len(w.paid_at) for w in windows)

        await eventually(fewest_paid, lambda n: n >= 2, within=120)  # every window paying
        killed = float(cluster.ask("kill")["killed"])
        # Every window pays again after the kill, the lost node's too.
        deadline = time.monotonic() + 180
        while not all(any(t > killed for t in w.paid_at) for w in windows):
            assert time.monotonic() < deadline, "a window did not take payments again"
            for task in paying:
                if task.done():
                    task.result()  # a refusal other than UNAVAILABLE ends the test here
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*paying)
        after = placed(cluster)
        assert set(after) == set(before)  # every actor lives again
        assert cluster.worker not in after.values()  # on the surviving node

        payments = [p for w in windows for p in w.payments]
        final = await settle(clients, [p.order.order_id for p in payments])
        final, found = await checked(clients, payments, stack.sandboxes, final)
        assert found == []
        assert double_charges(final, stack.sandboxes) == 0

        def again_after_s(window: Window) -> float:
            return min(t for t in window.paid_at if t > killed) - killed

        def longest_gap_s(window: Window) -> float:
            times = [killed, *[t for t in window.paid_at if t > killed]]
            return max(b - a for a, b in itertools.pairwise(times))

        lost = [again_after_s(w) for w in windows if w.window in lost_windows]
        kept = [longest_gap_s(w) for w in windows if w.window not in lost_windows]
        figures = {
            "payments": len(payments),
            "actors_on_lost_node": len(on_worker),
            "actors": len(before),
            "lost_windows_pay_again_after_s": round(max(lost), 1),
            "other_windows_longest_wait_after_kill_s": round(max(kept), 1) if kept else None,
            "client_retries": tally.retries,
            "retried_codes": dict(tally.by_code),
            "size": "ci",
        }
        print(f"\nfault 4-ray-worker-node-lost: {json.dumps(figures)}")
        previous = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        previous["4-ray-worker-node-lost"] = figures
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(previous, indent=2, sort_keys=True))
    finally:
        stop.set()
        await clients.close()
