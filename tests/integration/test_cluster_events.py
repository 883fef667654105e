"""The order events on a Redis Cluster: the commit script PUBLISHes on its service
point's channel on whichever master serves that slot, and the cluster forwards classic
pub/sub to every node, so the one pattern subscription (store/order_events.py) hears the
service points of every master."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from orchestrator.store import keys
from orchestrator.store.order_events import OrderEventSource
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.write_batch import WriteBatch
from tests.redis_cluster import RedisCluster
from tests.support import eventually, unique_prefix


async def commit_event(store: RedisStore, sp: str, event: bytes) -> None:
    epoch = await store.take_over(sp)
    batch = WriteBatch()
    batch.save_order(sp, f"{sp}-A", 0, 1, b"snapshot", [b"entry"], event)
    await store.commit(batch, {sp: epoch})


async def hears_every_master(cluster: RedisCluster, store: RedisStore, heard: list[bytes]) -> None:
    """Commits on service points of every master; each one's event must be heard."""
    prefix = unique_prefix()
    points = [f"{prefix}{n:02d}" for n in range(40)]  # on every master, but for 3e-7
    masters = {cluster.node_of_key(keys.epoch(sp)).port for sp in points}
    assert len(masters) == 3  # the test would prove nothing on one node
    for sp in points:
        await commit_event(store, sp, f"event of {sp}".encode())
    expected = {f"event of {sp}".encode() for sp in points}
    await eventually(lambda: asyncio.sleep(0, set(heard)), lambda got: got >= expected)


async def test_one_pattern_subscription_hears_every_masters_service_points(
    cluster_redis: Redis, redis_cluster: RedisCluster
) -> None:
    heard: list[bytes] = []
    subscribed = asyncio.Event()
    source = OrderEventSource(cluster_redis)
    reading = asyncio.create_task(source.read_forever(subscribed.set, heard.append))
    try:
        await asyncio.wait_for(subscribed.wait(), timeout=10)
        await hears_every_master(redis_cluster, RedisStore(cluster_redis), heard)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
