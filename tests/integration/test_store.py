"""What only the Redis store does: claim TTLs, the drainer's expiry cleared by a commit,
lost snapshots, the script cache, pub/sub and the window read. What both stores promise
(claims, all-or-nothing commits, fencing) is in test_store_contract.py."""

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.store import keys
from orchestrator.store.port import LiveOrders
from orchestrator.store.reads import RedisOrderReads
from orchestrator.store.redis_store import CommitRejected, RedisStore, WriteBatch
from tests.support import new_id, unique_prefix


async def test_a_claim_inserts_once_and_a_duplicate_does_not_refresh_its_ttl(redis: Redis) -> None:
    store = RedisStore(redis)
    key = keys.request_claim(new_id())
    first = store.read_batch()
    read = first.claim(key, "fp-1", 60_000)
    await first.run()
    assert read.value is None  # inserted
    ttl_before = await redis.pttl(key)
    await redis.pexpire(key, 5_000)  # shorten, so a refresh would be visible
    again = store.read_batch()
    read = again.claim(key, "fp-2", 60_000)
    await again.run()
    assert read.value == b"fp-1"  # the holder's value, unchanged
    assert await redis.get(key) == b"fp-1"
    assert 0 < await redis.pttl(key) <= 5_000 < ttl_before


async def commit_order(store: RedisStore, sp: str, epoch: int, prev: int, version: int) -> None:
    batch = WriteBatch()
    batch.save_order(sp, f"{sp}-A", prev, version, b"snap%d" % version, [b"j%d" % version], b"e")
    batch.mark_open(sp, f"{sp}-A", "W1")
    await store.commit(batch, {sp: epoch})


async def test_the_open_orders_of_a_window_are_read_by_window(redis: Redis) -> None:
    store = RedisStore(redis)
    sp = unique_prefix()
    epoch = await store.take_over(sp)
    await commit_order(store, sp, epoch, 0, 1)
    await commit_order(store, sp, epoch, 1, 2)
    reads = RedisOrderReads(redis)
    assert await reads.window_orders(sp, "W1") == [b"snap2"]
    assert await reads.window_orders(sp, "W2") == []


async def test_a_commit_clears_the_expiry_the_drainer_gave_the_order(redis: Redis) -> None:
    """A final order, drained, has the retention; a refund reopening it must not keep
    it (it would expire with the refund pending while the record is away)."""
    store = RedisStore(redis)
    sp = unique_prefix()
    epoch = await store.take_over(sp)
    await commit_order(store, sp, epoch, 0, 1)
    names = [keys.order(sp, f"{sp}-A"), keys.journal(sp, f"{sp}-A")]
    for name in names:
        await redis.pexpire(name, 60_000)
    await commit_order(store, sp, epoch, 1, 2)
    assert [await redis.pttl(name) for name in names] == [-1, -1]


async def test_an_open_order_whose_snapshot_is_gone_is_reported_missing(redis: Redis) -> None:
    store = RedisStore(redis)
    sp = unique_prefix()
    epoch = await store.take_over(sp)
    await commit_order(store, sp, epoch, 0, 1)
    await redis.delete(keys.order(sp, f"{sp}-A"))
    assert await store.open_orders(sp) == LiveOrders([], [f"{sp}-A"])
    await store.ask_reload(sp, [f"{sp}-A"])
    assert await redis.smembers(keys.missing_orders(sp)) == {f"{sp}-A".encode()}


async def test_a_commit_after_redis_forgot_its_scripts_loads_them_and_writes_once(
    redis: Redis,
) -> None:
    store = RedisStore(redis)
    sp = unique_prefix()
    epoch = await store.take_over(sp)
    await commit_order(store, sp, epoch, 0, 1)
    await redis.script_flush()  # as after a Redis restart: the script cache is empty
    await commit_order(store, sp, epoch, 1, 2)
    assert await store.order(f"{sp}-A") == b"snap2"
    assert await store.journal(f"{sp}-A") == [b"j1", b"j2"]


async def test_every_committed_snapshot_is_published(redis: Redis) -> None:
    store = RedisStore(redis)
    sp = unique_prefix()
    epoch = await store.take_over(sp)
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.events(sp))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    await commit_order(store, sp, epoch, 0, 1)
    message = await pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == b"e"
    await pubsub.aclose()


async def test_the_script_refuses_a_batch_linked_after_a_stale_chain_head(redis: Redis) -> None:
    """commit.lua as the fake: a second writer linking after the empty chain is refused
    once the head moved, and writes nothing of its batch."""
    from orchestrator.store import chain

    store = RedisStore(redis)
    sp = unique_prefix()
    epoch = await store.take_over(sp)
    day = (sp, "2026-12-07")
    entry = chain.Unlinked({"v": 1, "at": 0, "what": "created", "order_state": "X"}, day[1])
    batch = WriteBatch()
    batch.save_order(sp, f"{sp}-A", 0, 1, b"a1", [entry], b"e")
    moved = batch.link({day: chain.Head()}, {sp: f"{sp}/1"})
    await store.commit(batch, {sp: epoch})
    assert await store.chain_heads([day]) == [moved[day].encode().encode()]
    assert await redis.pttl(keys.chain_head(*day)) > 0
    fork = WriteBatch()
    fork.save_order(sp, f"{sp}-B", 0, 1, b"b1", [entry], b"e")
    fork.link({day: chain.Head()}, {sp: f"{sp}/1"})
    with pytest.raises(CommitRejected, match="WPCHAIN"):
        await store.commit(fork, {sp: epoch})
    assert await store.order(f"{sp}-B") is None
    [linked] = await store.journal(f"{sp}-A")
    assert chain.entry_hash(orjson.loads(linked)) == moved[day].hash
