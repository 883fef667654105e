"""Which client a redis_url opens, and what the store waits for on it (no Redis is
started: neither client connects before its first command)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from orchestrator.store.connect import connect, is_cluster, names_cluster
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.replication import NONE, Replication, replication_for


async def test_a_cluster_url_opens_a_cluster_client_that_waits_for_one_replica() -> None:
    url = "redis+cluster://:secret@127.0.0.1:7000/0"
    assert names_cluster(url)
    redis = connect(url)
    try:
        assert isinstance(redis, RedisCluster) and is_cluster(redis)
        assert RedisStore(redis).replication == Replication(1, 2000)
        assert replication_for(redis, None, 500) == Replication(1, 500)
        assert replication_for(redis, 0) is NONE  # redis_replicas_ack = 0 turns it off
    finally:
        await redis.aclose()


async def test_a_single_server_url_opens_redis_that_waits_only_when_told() -> None:
    url = "redis://:secret@127.0.0.1:6390/0"
    assert not names_cluster(url)
    redis = connect(url)
    try:
        assert type(redis) is Redis and not is_cluster(redis)
        assert RedisStore(redis).replication is NONE
        assert replication_for(redis, 1) == Replication(1, 2000)  # redis_replicas_ack = 1
    finally:
        await redis.aclose()
