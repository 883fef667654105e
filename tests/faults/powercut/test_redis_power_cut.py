"""A power cut under Redis while a service point takes payments (invariant 4).

Redis keeps its append-only files on the volatile filesystem (volatile.py). Windows pay
through the service-point core and its group commit into RedisStore, the path of every
acknowledged transition. At the first payment acknowledged after CUT_AFTER_S, Redis is
killed -9, the writes it had not fsync'd are dropped, and it starts again on what the
disk kept. Acknowledged means: the core's answer (Done, Accepted) or its report that the
attempt ended paid, each given only once the commit returned.

With `appendfsync always` nothing acknowledged may be missing. With `everysec` (the
negative control) Redis answers before it syncs: the same test must find acknowledged
payments lost, proof that it can fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import Config
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import Accepted, CreateOrder, Done, Pay
from orchestrator.domain.order import Attempt, Order, Refund
from orchestrator.domain.states import AttemptState, Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.redis_store import RedisStore
from tests.faults.powercut.cutting import CUT_AFTER_S, until_the_cut
from tests.faults.powercut.disk import VolatileDisk
from tests.support import PROVIDER_CHANNELS, code, new_id, small_config, unique_prefix

WINDOWS = 6
LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 2))


@dataclass
class Acknowledged:
    """What the core acknowledged, per order: its version then, and the paying attempt.
    It cuts the power at the first payment acknowledged after CUT_AFTER_S."""

    cut: Callable[[], None]
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    versions: dict[str, int] = field(default_factory=dict)
    paid_by: dict[str, str] = field(default_factory=dict)
    ended: dict[str, asyncio.Event] = field(default_factory=dict)
    cut_done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        """Whether the windows stop paying (the cut is done)."""
        return self.cut_done.is_set()

    @property
    def faulting(self) -> bool:
        """Whether the store may fail now (the fault has begun); a failure before fails
        the test."""
        return self.done

    def acknowledge(self, snapshot: bytes) -> str:
        order = orjson.loads(snapshot)
        self.versions[order["order_id"]] = order["version"]
        return str(order["order_id"])

    # ---- the core's observer (CoreObserver): called after the commit is durable ----

    def attempt_ended(self, order: Order, attempt: Attempt) -> None:
        # Also after the cut: an answer Redis sent before it died still counts.
        self.versions[order.order_id] = order.version
        if attempt.state is AttemptState.SUCCEEDED:
            self.paid_by[order.order_id] = attempt.attempt_id
            if not self.done and asyncio.get_running_loop().time() - self.started >= CUT_AFTER_S:
                self.cut()
                self.cut_done.set()
        self.ended.setdefault(order.order_id, asyncio.Event()).set()

    def submitted(self, command_type: str) -> None: ...
    def idempotency(self, command_type: str, result: str) -> None: ...
    def refund_ended(self, order: Order, refund: Refund) -> None: ...
    def reversal(self, channel: Channel, outcome: str) -> None: ...
    def late_success(self, channel: Channel) -> None: ...
    def refund_overdue(self, channel: Channel, overdue: bool) -> None: ...
    def recalled(self, outcome: str) -> None: ...


async def take_payments(
    core: ServicePointCore, window: str, terminal: str, acks: Acknowledged
) -> None:
    """One window: create an order, pay it, wait for the outcome, again, until the cut."""
    while not acks.done:
        try:
            [created] = await core.submit(
                [CreateOrder(new_id(), new_id("B"), window, "周八", LINES)]
            )
            assert isinstance(created, Done), created
            order_id = acks.acknowledge(created.order)
            ended = acks.ended.setdefault(order_id, asyncio.Event())
            pay = Pay(new_id(), terminal, window, order_id, Channel.WECHAT, code(Channel.WECHAT), 0)
            [accepted] = await core.submit([pay])
            assert isinstance(accepted, Accepted), accepted
            acks.acknowledge(accepted.order)
            await ended.wait()
        except RedisError:
            if not acks.faulting:
                raise
            return  # a command in flight at the cut: never acknowledged


async def cut_under_payments(server: EmbeddedRedis) -> Acknowledged:
    config = small_config(prefix=unique_prefix(), service_points=1, windows=WINDOWS)
    redis = Redis.from_url(server.url)
    acks = Acknowledged(cut=server.crash)
    try:
        failures = await pay_until(config, RedisStore(redis), acks, acks.cut_done)
    finally:
        await redis.aclose()
    assert all(isinstance(f, RedisError) for f in failures), failures  # only the cut's
    return acks


async def pay_until(
    config: Config, store: RedisStore, acks: Acknowledged, cut: asyncio.Event
) -> list[BaseException]:
    """Every window of the config's one service point pays through a core over `store`
    until `cut` is set; what the core reported as fatal (its failed commits)."""
    [point] = config.deployment.service_points
    banks = {ch: SandboxBank(ch.value, Timing(time_scale=0.05)) for ch in PROVIDER_CHANNELS}
    providers = {ch: SandboxProvider(ch, banks[ch]) for ch in PROVIDER_CHANNELS}
    failures: list[BaseException] = []
    core = ServicePointCore(
        [point.id], config, store, providers, on_fatal=failures.append, observer=acks
    )
    try:
        await core.start()
        terminals = {w: t for t, w in config.deployment.terminal_window.items()}
        windows = [
            asyncio.create_task(take_payments(core, w, terminals[w], acks)) for w in point.windows
        ]
        await until_the_cut(cut, windows)
    finally:
        await core.stop()
    return failures


async def lost_after_restart(server: EmbeddedRedis, acks: Acknowledged) -> list[str]:
    """The acknowledged orders Redis no longer holds as acknowledged, each with why."""
    server.start()
    redis = Redis.from_url(server.url)
    try:
        return await lost_orders(RedisStore(redis), acks)
    finally:
        await redis.aclose()


async def lost_orders(store: RedisStore, acks: Acknowledged) -> list[str]:
    """The acknowledged orders the store does not hold as acknowledged, each with why."""
    lost = []
    for order_id, version in acks.versions.items():
        snapshot = await store.order(order_id)
        journal = [orjson.loads(e)["v"] for e in await store.journal(order_id)]
        if snapshot is None:
            lost.append(f"{order_id}: gone (acknowledged v{version})")
            continue
        order = orjson.loads(snapshot)
        if order["version"] < version or journal != list(range(1, order["version"] + 1)):
            lost.append(f"{order_id}: v{order['version']}, journal {journal}, acked v{version}")
        elif order_id in acks.paid_by and (order["state"], order["paid_by"]) != (
            "PAID",
            acks.paid_by[order_id],
        ):
            lost.append(f"{order_id}: {order['state']} though acknowledged paid")
    return lost


async def power_cut(
    root: Path, volatile: Callable[[Path, Path], VolatileDisk], appendfsync: str
) -> tuple[Acknowledged, list[str], tuple[int, int]]:
    disk = volatile(root / "redis.disk", root / "redis")
    server = EmbeddedRedis(disk.mountpoint, appendfsync=appendfsync)
    server.start()
    try:
        async with Redis.from_url(server.url) as redis:
            assert await redis.config_get("appendfsync") == {"appendfsync": appendfsync}
        acks = await cut_under_payments(server)
        dropped = disk.cut()
        lost = await lost_after_restart(server, acks)
    finally:
        server.stop()
    print(
        f"\nappendfsync {appendfsync}: {len(acks.paid_by)} payments acknowledged, "
        f"{len(lost)} orders lost; the cut dropped {dropped[1]} unsynced pages"
    )
    return acks, lost, dropped


async def test_appendfsync_always_keeps_every_acknowledged_payment(
    power_root: Path, volatile: Callable[[Path, Path], VolatileDisk]
) -> None:
    acks, lost, _ = await power_cut(power_root, volatile, "always")
    assert len(acks.paid_by) >= 20, "too few payments to prove anything"
    assert lost == []


async def test_appendfsync_everysec_loses_acknowledged_payments(
    power_root: Path, volatile: Callable[[Path, Path], VolatileDisk]
) -> None:
    """The negative control: the same cut, a Redis that answers before it syncs. A cut
    that lands just after everysec's sync may lose nothing (rarely: the sync must have
    covered the very last answer): then the power is cut once more."""
    for attempt in (1, 2):
        acks, lost, dropped = await power_cut(power_root / f"cut{attempt}", volatile, "everysec")
        if lost:
            break
    assert dropped[1] > 0
    assert lost != [], f"everysec lost none of {len(acks.versions)} acknowledged orders, twice"
