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
import collections
import itertools
import json
import select
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import tomli_w

from orchestrator.access.pki import PkiPaths
from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.keys import SANDBOX_SIGNER
from orchestrator.config import Config, parse_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis, free_port
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.healthcheck import status as health_status
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.sandbox.bank import TradeState
from orchestrator.sandbox.common import Notification
from tests.faults.conftest import VAR
from tests.faults.load import (
    MIX,
    RETRIED,
    Clients,
    Payment,
    Tally,
    checked,
    double_charges,
    retrying,
    settle,
)
from tests.faults.served import WINDOWPAY, Served, identity
from tests.support import eventually, small_config_data

ROOT = Path(__file__).resolve().parents[2]
REPORT = VAR / "faults-report.json"


@dataclass
class RayCluster:
    """The child process holding the cluster."""

    process: subprocess.Popen[str]
    address: str
    worker: str  # the worker node's id

    def answer(self, within: float = 180.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], within)
        if not ready:
            raise AssertionError(f"the Ray cluster's process did not answer within {within} s")
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
    redis_url: str
    database_url: str
    notify_port: int  # the serving process's notification listener

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
        notify_port = free_port()
        served.args = ["--ray-address", ray_cluster.address, "--notify-port", str(notify_port)]
        await served.supervised_start()
        yield ClusterStack(
            config, data_dir, sandboxes, served, ray_cluster, redis.url, database_url, notify_port
        )
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
    tally: Tally = field(default_factory=Tally)  # what it had to resend, and why


async def keep_paying(
    clients: Clients, window: Window, plans: Iterator[Any], stop: asyncio.Event
) -> None:
    """Back to back, with no pause: a command of the window is always on its way to its
    actor, so a lost node's windows each have one in flight when it is lost."""
    tally = window.tally
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


SINGLETONS = {"receipts", "record-drainer"}  # the receipt issuer, the record's drainer


def placed(cluster: RayCluster) -> dict[str, str]:
    """Each live actor's node: the service points' and the singletons'."""
    nodes: dict[str, str] = cluster.ask("where")["actors"]
    return {n: node for n, node in nodes.items() if n.startswith("sp-") or n in SINGLETONS}


async def test_a_lost_worker_node_stops_only_its_windows_and_loses_nothing(
    cluster_stack: ClusterStack,
) -> None:
    stack = cluster_stack
    cluster = stack.cluster
    before = placed(cluster)
    assert set(before) >= SINGLETONS, before
    points = {name for name in before if name.startswith("sp-")}
    on_worker = {name for name in points if before[name] == cluster.worker}
    # Spread: both nodes hold service points; the singletons stay on the head.
    print(f"\nplaced: {before}, worker node {cluster.worker}")
    assert on_worker and on_worker != points, before
    assert all(before[name] != cluster.worker for name in SINGLETONS), before
    starts = stack.served.starts
    lost_windows = {
        w
        for w, sp in stack.config.deployment.window_service_point.items()
        if f"sp-{sp}" in on_worker
    }
    clients = Clients(stack.data_dir)
    stop = asyncio.Event()
    plans = itertools.cycle([plan for plan in MIX if plan[1] in ("0000", "1111", "2222")])
    windows = [Window(w, stack.terminals[w]) for w in stack.windows]
    try:
        paying = [asyncio.ensure_future(keep_paying(clients, w, plans, stop)) for w in windows]

        async def fewest_paid() -> int:
            for task in paying:
                if task.done():
                    task.result()  # a refusal other than a resend's ends the test here
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
        # The serving process went on: the same process, never restarted.
        assert stack.served.process is not None and stack.served.process.poll() is None
        assert stack.served.starts == starts
        # Terminals resent only on UNAVAILABLE (never a deadline passed, never another
        # code), and the other windows never had to resend at all.
        codes = {code for w in windows for code in w.tally.by_code}
        assert codes <= {"UNAVAILABLE"}, codes
        resent = {w.window: w.tally.retries for w in windows if w.window not in lost_windows}
        assert set(resent.values()) <= {0}, resent

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
            "service_point_actors": len(points),
            "lost_windows_pay_again_after_s": round(max(lost), 1),
            "other_windows_longest_wait_after_kill_s": round(max(kept), 1) if kept else None,
            "client_retries": sum(w.tally.retries for w in windows),
            "retried_codes": dict(sum((w.tally.by_code for w in windows), collections.Counter())),
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


class FrontDoor:
    """A second front door: `windowpay serve --join` on the cluster, its own port, the
    deployment's actors, Redis, record and PKI (as on another host)."""

    def __init__(self, stack: ClusterStack) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.notify_port = free_port()  # its notification listener's
        self.log_path = stack.data_dir / "joined-front-door.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    WINDOWPAY, "serve", "--join",
                    "--ray-address", stack.cluster.address,
                    "--config", str(stack.served.config),
                    "--redis-url", stack.redis_url,
                    "--database-url", stack.database_url,
                    "--data-dir", str(stack.data_dir),
                    "--port", str(self.port),
                    "--notify-port", str(self.notify_port),
                    "--metrics-port", "0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._monitor = identity(stack.data_dir, "monitor")

    async def serving(self) -> None:
        async def health() -> str:
            if self.process.poll() is not None:
                raise AssertionError(f"the joined front door exited; see {self.log_path}")
            return await asyncio.to_thread(
                lambda: health_status(self.target, self._monitor, timeout_s=2)
            )

        await eventually(health, lambda answer: answer == "SERVING", within=180, every=0.5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass
class Terminal:
    """A POS terminal that knows two front doors: it uses the first until it answers
    UNAVAILABLE (or not at all), then the other, resending the same request."""

    terminal_id: str
    doors: list[Clients]
    door: int = 0
    switched: int = 0
    latest: dict[str, pb.Order] = field(default_factory=dict)
    streams: int = 0
    breaks: collections.Counter[str] = field(default_factory=collections.Counter)

    def _away_from(self, door: int) -> None:
        """The door that failed is left for the next one (once, whoever noticed first:
        the stream and a payment may both see it fail)."""
        if self.door == door:
            self.door = (door + 1) % len(self.doors)
            self.switched += 1

    async def pay(self, payment: Payment, within: float = 120) -> pb.Order:
        deadline = time.monotonic() + within
        while True:
            door = self.door
            try:
                answer: pb.Order = await self.doors[door].terminal.Pay(
                    payment.request(), timeout=15
                )
                return answer
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRIED or time.monotonic() > deadline:
                    raise
                self.breaks[error.code().name] += 1
                self._away_from(door)
                await asyncio.sleep(0.3)

    async def watch(self) -> None:
        while True:
            door = self.door
            try:
                stream = self.doors[door].terminal.WatchWindow(
                    pb.WatchWindowRequest(terminal_id=self.terminal_id)
                )
                self.streams += 1
                async for order in stream:
                    seen = self.latest.get(order.order_id)
                    if seen is None or order.version >= seen.version:
                        self.latest[order.order_id] = order
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRIED:
                    raise
                self.breaks[error.code().name] += 1
                self._away_from(door)
            await asyncio.sleep(0.3)


async def new_order(clients: Clients, window: str) -> pb.Order:
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex,
        business_no=f"K-{uuid.uuid4().hex[:12]}",
        window_id=window,
        payer_name="孙八",
        lines=[pb.OrderLine(fee_code="DOC-DLIC", quantity=1)],
    )
    order: pb.Order = await retrying(
        lambda: clients.business.CreateOrder(request, timeout=15), within=120
    )
    return order


async def test_a_front_door_lost_its_terminals_go_on_through_another(
    cluster_stack: ClusterStack,
) -> None:
    """Two front doors on the cluster; terminals use the joined one. It is killed while
    they pay and watch their windows: each resends to the other door with the same
    request, and its WatchWindow stream goes on there with the window as it is now."""
    stack = cluster_stack
    joined = FrontDoor(stack)
    first = Clients(stack.data_dir)
    second = Clients(stack.data_dir, joined.target)
    watching: list[asyncio.Future[None]] = []
    try:
        await joined.serving()
        windows = stack.windows
        terminals = {w: Terminal(stack.terminals[w], [second, first]) for w in windows}
        watching = [asyncio.ensure_future(t.watch()) for t in terminals.values()]
        await eventually(
            lambda: asyncio.sleep(0, [t.streams for t in terminals.values()]), lambda c: all(c)
        )
        plans = itertools.cycle([p for p in MIX if p[1] in ("0000", "1111", "2222")])
        payments = []
        for window in windows:
            channel, ending = next(plans)
            order = await new_order(first, window)
            payments.append(Payment(order, stack.terminals[window], channel, ending))
        paying = asyncio.gather(
            *(terminals[p.order.window_id].pay(p) for p in payments), return_exceptions=True
        )
        await asyncio.sleep(0.3)  # payments in flight through the joined door
        joined.kill()
        answers = await paying
        refused = [a for a in answers if isinstance(a, BaseException)]
        assert refused == []  # every payment answered, through one door or the other
        for payment, answer in zip(payments, answers, strict=True):
            assert isinstance(answer, pb.Order)
            payment.answer = answer
        # Every terminal went on through the first door, and its stream with it.
        assert all(t.door == 1 for t in terminals.values()), [t.door for t in terminals.values()]
        assert all(set(t.breaks) <= {c.name for c in RETRIED} for t in terminals.values())
        final = await settle(first, [p.order.order_id for p in payments])
        final, found = await checked(first, payments, stack.sandboxes, final)
        assert found == []
        assert double_charges(final, stack.sandboxes) == 0
        # The streams show each window as it is now, an order made after the loss too.
        later = {w: await new_order(first, w) for w in windows}
        for window, terminal in terminals.items():
            expected = {
                o.order_id: o.version
                for o in (*final.values(), later[window])
                if o.window_id == window and o.state in (pb.AWAITING_PAYMENT, pb.PAYING)
            }
            await eventually(
                lambda t=terminal, e=expected: asyncio.sleep(
                    0, {o: t.latest[o].version for o in e if o in t.latest}
                ),
                lambda seen, e=expected: seen == e,
                within=30,
            )
        figures = {
            "terminals": len(terminals),
            "switched_doors": sum(t.switched for t in terminals.values()),
            "stream_reconnects": sum(t.streams - 1 for t in terminals.values()),
            "breaks": dict(sum((t.breaks for t in terminals.values()), collections.Counter())),
            "size": "ci",
        }
        print(f"\nfault 4-front-door-lost-on-the-cluster: {json.dumps(figures)}")
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        joined.kill()
        await first.close()
        await second.close()


# Code payments their provider notifies (a WeChat code payment is told by queries alone).
NOTIFIED = (Channel.ALIPAY, Channel.UNIONPAY)


async def post_notification(
    stack: ClusterStack, port: int, channel: Channel, sent: Notification
) -> bool:
    """Post `sent` as its provider would to the listener on `port` (over the deployment's
    TLS, its development CA trusted); whether the answer means "received"."""
    trust = ssl.create_default_context(cafile=PkiPaths(stack.data_dir / "pki").ca_cert)
    url = f"https://127.0.0.1:{port}/notify/{channel.value.lower()}"
    headers = {"Content-Type": sent.content_type, **sent.headers}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=sent.body, headers=headers, ssl=trust) as answer,
    ):
        return sent.delivered(answer.status, await answer.text())


async def test_every_process_listens_for_notifications_and_applies_each_once(
    cluster_stack: ClusterStack,
) -> None:
    """A joined process runs a notification listener too (its own port, the deployment's
    certificate). While the provider answers every query "unavailable", so that only a
    notification can tell windowpay the payer paid, the payment's notification is
    posted to the joined process's listener: the order becomes paid. The same
    notification posted to both listeners at once is received by both and changes
    nothing: one payment, one charge, the order at the same version."""
    stack = cluster_stack
    joined = FrontDoor(stack)
    clients = Clients(stack.data_dir)

    async def current(order_id: str) -> pb.Order:
        order: pb.Order = await retrying(
            lambda: clients.terminal.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=15),
            within=60,
        )
        return order

    async def paid_by_notification(payment: Payment) -> None:
        order_id, channel = payment.order.order_id, payment.channel
        bank = stack.sandboxes.bank(channel)
        bank.faults = {"query"}
        try:
            paying = asyncio.ensure_future(
                retrying(lambda: clients.terminal.Pay(payment.request(), timeout=15), within=60)
            )
            waiting = await eventually(lambda: current(order_id), lambda o: bool(o.attempts))
            attempt_id = waiting.attempts[0].attempt_id
            trade = await eventually(
                lambda: asyncio.sleep(0, bank.trade(attempt_id)),
                lambda t: t is not None and t.state is TradeState.SUCCESS,
            )  # the payer confirmed at the provider; windowpay cannot ask
            assert trade is not None
            sent = stack.sandboxes.gateways[channel].notification(trade, None)
            assert sent is not None
            assert await post_notification(stack, joined.notify_port, channel, sent)
            paid = await eventually(
                lambda: current(order_id), lambda o: o.state == pb.PAID, within=20
            )
        finally:
            bank.faults = set()
        payment.answer = await paying
        both = await asyncio.gather(
            post_notification(stack, joined.notify_port, channel, sent),
            post_notification(stack, stack.notify_port, channel, sent),
        )
        assert list(both) == [True, True]
        again = await current(order_id)
        assert (again.state, again.version) == (pb.PAID, paid.version)

    try:
        await joined.serving()
        payments = []
        for channel, window in zip(NOTIFIED, stack.windows, strict=False):
            order = await new_order(clients, window)
            payments.append(Payment(order, stack.terminals[window], channel, "1111"))
            await paid_by_notification(payments[-1])
        final = await settle(clients, [p.order.order_id for p in payments])
        final, found = await checked(clients, payments, stack.sandboxes, final)
        assert found == []
        assert double_charges(final, stack.sandboxes) == 0
        assert all(len(o.attempts) == 1 for o in final.values())
    finally:
        joined.kill()
        await clients.close()
