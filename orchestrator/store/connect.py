"""The one way windowpay opens Redis: a single server (`redis://…`, today's default) or a
Redis Cluster (`redis+cluster://[:password@]host:port`, any node of it as the seed;
redis-py's `RedisCluster` then finds the others and follows the slots as they move).

`RedisCluster` speaks the same commands as `Redis` (the same command mixins), so the
rest of the code keeps its `Redis` annotations; what only a cluster needs (routing a
pipeline's commands to their nodes, WAIT on each) is decided in store/replication.py by
`is_cluster`."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def names_cluster(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def connect(url: str, **options: Any) -> Redis:
    """A client for `url`: a `RedisCluster` for a cluster's scheme, else a `Redis`."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in CLUSTER_SCHEMES:
        cluster = RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **options)
        return cast(Redis, cluster)
    return Redis.from_url(url, **options)


def is_cluster(redis: Redis) -> bool:
    return isinstance(redis, RedisCluster)
