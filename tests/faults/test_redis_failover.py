"""A Redis Cluster master killed with SIGKILL while a service point takes payments, and
its replica promoted by the cluster itself (issue 26, "a Redis master killed
mid-payment, then failed over").

Each case starts its own cluster (3 masters with a replica each, tests/redis_cluster.py,
`cluster-node-timeout` 1 s: `CLUSTER FAILOVER` needs a live master, so the cluster's
automatic failover promotes the replica). Windows pay through the service-point core,
its group commit and RedisStore on the cluster, as the power-cut test does
(powercut/test_redis_power_cut.py, whose observer this reuses). At the first payment
acknowledged after CUT_AFTER_S the master that serves the service point's slot is
killed; once the replica serves the slot, every acknowledged order must be there at its
acknowledged version, with its journal, paid by the acknowledged attempt.

The negative control cuts replication for a second before the kill (the replica is
stopped with SIGSTOP and the master drops its link, `CLIENT KILL TYPE replica`: stopping
alone is not enough, what the master already sent waits in the replica's socket buffer):
a store that does not WAIT goes on acknowledging changes only the master holds, and the
promoted replica must lack some.
With WAIT the same stall acknowledges nothing (commits end NotReplicated, answered
UNAVAILABLE), and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError

from orchestrator.store import keys
from orchestrator.store.connect import connect
from orchestrator.store.order_events import OrderEventSource
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.replication import NONE, Replication
from tests.faults.powercut.test_redis_power_cut import (
    WINDOWS,
    Acknowledged,
    lost_orders,
    pay_until,
)
from tests.integration.test_cluster_events import hears_every_master
from tests.redis_cluster import Node, RedisCluster
from tests.support import small_config, unique_prefix

STALL_S = 1.0  # how long the replica stalls before its master is killed


class Failover:
    """Kills the service point's master when the observer calls `cut`; with `stall`,
    first stops its replica for STALL_S and lets it go on once the master is dead."""

    def __init__(self, cluster: RedisCluster, master: Node, stall: bool) -> None:
        self.cluster, self.master, self.stall = cluster, master, stall
        self.replica = cluster.replica_of(master)
        self.task: asyncio.Task[None] | None = None
        self.killed = asyncio.Event()

    def cut(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._cut())

    async def _cut(self) -> None:
        if self.stall:
            assert self.replica.process is not None
            self.replica.process.send_signal(signal.SIGSTOP)
            try:
                # What the master already sent waits in the stopped replica's socket
                # buffer and would still be applied; dropping the link stops the stream.
                with self.cluster.client(self.master.port) as master:
                    master.execute_command("CLIENT", "KILL", "TYPE", "replica")
                await asyncio.sleep(STALL_S)  # payments go on meanwhile
                self.cluster.kill(self.master)
            finally:
                self.replica.process.send_signal(signal.SIGCONT)
        else:
            self.cluster.kill(self.master)
        self.killed.set()


@dataclass
class UntilFailover(Acknowledged):
    """The windows pay on through the stall, until the master is killed; the store may
    fail from the stall on (WAIT then answers NotReplicated)."""

    failover: Failover | None = None

    @property
    def done(self) -> bool:
        return self.failover is not None and self.failover.killed.is_set()

    @property
    def faulting(self) -> bool:
        return self.failover is not None and self.failover.task is not None


async def payments_until_failover(
    cluster: RedisCluster, replication: Replication, *, stall: bool
) -> tuple[Acknowledged, list[str]]:
    config = small_config(prefix=unique_prefix(), service_points=1, windows=WINDOWS)
    [point] = config.deployment.service_points
    master = cluster.node_of_key(keys.epoch(point.id))
    failover = Failover(cluster, master, stall)
    redis = connect(cluster.url)
    acks = UntilFailover(cut=failover.cut, failover=failover)
    try:
        failures = await pay_until(config, RedisStore(redis, replication), acks, failover.killed)
    finally:
        await redis.aclose()
    # Only the stall's unconfirmed commits (NotReplicated) and the kill's lost connections.
    assert all(isinstance(f, RedisError) for f in failures), failures
    await asyncio.to_thread(cluster.wait_ok)
    promoted = cluster.node_of_key(keys.epoch(point.id))
    assert promoted.port == failover.replica.port, "the slot is served by the old replica"
    return acks, await lost_after_failover(cluster, acks)


async def lost_after_failover(cluster: RedisCluster, acks: Acknowledged) -> list[str]:
    """The acknowledged orders the promoted replica does not hold as acknowledged."""
    redis = connect(cluster.url)
    try:
        return await lost_orders(RedisStore(redis, NONE), acks)
    finally:
        await redis.aclose()


async def failover(root: Path, replication: Replication, *, stall: bool) -> list[str]:
    cluster = RedisCluster(root)
    cluster.start()
    try:
        acks, lost = await payments_until_failover(cluster, replication, stall=stall)
    finally:
        cluster.stop()
    print(
        f"\nWAIT {replication.replicas}, stall {stall}: {len(acks.paid_by)} payments and "
        f"{len(acks.versions)} orders acknowledged, {len(lost)} orders lost"
    )
    assert len(acks.paid_by) >= 10, "too few payments to prove anything"
    return lost


async def test_a_master_killed_under_payments_loses_no_acknowledged_change(
    tmp_path: Path,
) -> None:
    assert await failover(tmp_path / "cluster", Replication(1), stall=False) == []


async def test_with_its_replica_stalled_before_the_kill_wait_still_loses_nothing(
    tmp_path: Path,
) -> None:
    assert await failover(tmp_path / "cluster", Replication(1), stall=True) == []


async def test_without_wait_a_replica_stalled_before_the_kill_loses_acknowledged_changes(
    tmp_path: Path,
) -> None:
    """The negative control: the store acknowledges what only the master holds."""
    assert await failover(tmp_path / "cluster", NONE, stall=True) != []


async def test_the_order_events_subscription_is_taken_again_after_its_master_is_killed(
    tmp_path: Path,
) -> None:
    """The pattern subscription lives on the master of the pattern's slot; killed, the
    reader subscribes again on the promoted replica and hears every master again."""
    cluster = RedisCluster(tmp_path / "cluster")
    cluster.start()
    redis = connect(cluster.url)
    heard: list[bytes] = []
    subscriptions = 0
    subscribed = asyncio.Event()

    def on_subscribed() -> None:
        nonlocal subscriptions
        subscriptions += 1
        subscribed.set()

    reading = asyncio.create_task(OrderEventSource(redis).read_forever(on_subscribed, heard.append))
    try:
        await asyncio.wait_for(subscribed.wait(), timeout=10)
        listening = cluster.node_of_key(keys.EVENTS_PATTERN)
        subscribed.clear()
        cluster.kill(listening)
        await asyncio.to_thread(cluster.wait_ok)
        await asyncio.wait_for(subscribed.wait(), timeout=20)
        assert subscriptions == 2
        # The promoted master has no replica (its old master is dead): a store that
        # waits for one refuses its commits (NotReplicated) until one joins.
        await hears_every_master(cluster, RedisStore(redis, NONE), heard)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await redis.aclose()
        cluster.stop()
