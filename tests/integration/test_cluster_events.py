"""The order events and streams on a Redis Cluster. The commit script PUBLISHes on its
service point's channel on whichever master serves that slot, and the cluster forwards
classic pub/sub to every node, so the one pattern subscription (store/order_events.py)
hears the service points of every master. The outbox and change streams, one per
service point and so one slot each, are read stream by stream (store/stream_groups.py):
one XREADGROUP over all of them is CROSSSLOT on a cluster. Receipts, one slot."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ClusterDownError, SlotNotCoveredError

from orchestrator.record.streams import GroupReader
from orchestrator.store import keys
from orchestrator.store.order_events import OrderEventSource
from orchestrator.store.outbox import STORE_ERRORS, Outbox
from orchestrator.store.receipts import ReceiptStore
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.replication import KeyedPipeline
from orchestrator.store.write_batch import WriteBatch
from tests.redis_cluster import RedisCluster
from tests.support import eventually, unique_prefix


async def commit_event(store: RedisStore, sp: str, event: bytes) -> None:
    """An order's first version, with its change entry, its outbox event and `event`
    published."""
    epoch = await store.take_over(sp)
    batch = WriteBatch()
    batch.save_order(sp, f"{sp}-A", 0, 1, b"snapshot", [b"entry"], event)
    batch.emit(sp, "ORDER_PAID", 1, "", b"snapshot")
    await store.commit(batch, {sp: epoch})


def every_master(cluster: RedisCluster) -> list[str]:
    prefix = unique_prefix()
    points = [f"{prefix}{n:02d}" for n in range(40)]  # on every master, but for 3e-7
    assert len({cluster.node_of_key(keys.epoch(sp)).port for sp in points}) == 3
    return points


async def hears_every_master(cluster: RedisCluster, store: RedisStore, heard: list[bytes]) -> None:
    """Commits on service points of every master; each one's event must be heard."""
    points = every_master(cluster)
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


async def test_the_outbox_and_the_change_streams_are_read_on_every_master(
    cluster_redis: Redis, redis_cluster: RedisCluster
) -> None:
    points = every_master(redis_cluster)
    outbox = Outbox(cluster_redis, points)
    await outbox.join("business")
    changes = GroupReader(cluster_redis, [keys.changes(sp) for sp in points], "drain", "d1")
    await changes.join()
    store = RedisStore(cluster_redis)
    for sp in points:
        await commit_event(store, sp, b"event")
    events = []
    async for event in outbox.events("business", "reader", block_ms=200):
        if event is None:
            break
        events.append(event)
    assert sorted(e.service_point for e in events) == sorted(points)
    assert await outbox.ack("business", [e.event_id for e in events]) == len(points)
    await outbox.close()
    entries = await changes.read(1000, 200)
    assert sorted(e.stream for e in entries) == sorted(keys.changes(sp) for sp in points)
    await changes.ack(entries)
    assert await changes.read(1000, 200) == []  # an empty cluster answers after the block


async def test_receipt_numbers_are_allocated_and_written_on_a_cluster(
    cluster_redis: Redis,
) -> None:
    """The numbering's script and the receipt's transaction run on the {receipts}
    slot's node, each confirmed by its replica (redis-py refuses a Script in a cluster
    pipeline, which stopped the issuer on a cluster)."""
    receipts = ReceiptStore(cluster_redis)
    code = unique_prefix()
    orders = [f"SP01-{code}{n}" for n in range(5)]
    numbers = await receipts.allocate([(code, order_id) for order_id in orders])
    assert [(c, n, new) for c, n, new in numbers] == [
        (code, f"{n:010d}", True) for n in range(1, 6)
    ]
    assert await receipts.allocate([(code, orders[0])]) == [(code, "0000000001", False)]
    await receipts.save_all(
        [(code, number, b"record " + number.encode()) for _, number, _ in numbers]
    )
    assert await receipts.of_order(orders[4]) == b"record 0000000005"
    assert await receipts.last_number(code) == 5


async def test_a_slot_no_node_serves_is_a_store_error_the_readers_retry(
    cluster_redis: Redis,
) -> None:
    """As for a moment in a failover: redis-py's own error is not a RedisError, which
    every reader's loop retries on; the store raises one, and STORE_ERRORS covers both."""
    await cluster_redis.initialize()  # type: ignore[attr-defined]
    cluster_redis.nodes_manager.slots_cache.clear()  # type: ignore[attr-defined]
    pipe = KeyedPipeline(cluster_redis)
    pipe.add("wp:{SP01}:epoch", "GET", "wp:{SP01}:epoch")
    with pytest.raises(ClusterDownError, match="no node serves the slot"):
        await pipe.execute()
    assert issubclass(ClusterDownError, STORE_ERRORS) and issubclass(
        SlotNotCoveredError, STORE_ERRORS
    )
    assert await cluster_redis.get("wp:{SP01}:nothing") is None  # the slots are read again
