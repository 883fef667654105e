"""XREADGROUP over every service point's stream, on a single server or a Redis Cluster.

On a single server it is one command that blocks until any stream has something. On a
cluster each stream is in its own service point's slot, and one command may not name
keys of several slots (CROSSSLOT): each stream is read on its own, all of them in one
pipeline (one round trip per node), without blocking; while every stream is empty the
read is repeated every CLUSTER_POLL_MS until the block time is up. That costs one
XREADGROUP per stream and poll on a cluster (docs/SCALING.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from orchestrator.store.connect import is_cluster

CLUSTER_POLL_MS = 100


async def read_group(
    redis: Redis,
    group: str,
    consumer: str,
    streams: Mapping[str, str],
    *,
    count: int,
    block_ms: int | None,
) -> list[Any]:
    """[stream, entries] pairs, as XREADGROUP answers; `streams` maps each stream to the
    id to read after ("0": our pending entries, ">": new ones)."""
    if not is_cluster(redis):
        named: dict[Any, Any] = dict(streams)
        answer: Any = await redis.xreadgroup(group, consumer, named, count=count, block=block_ms)
        return list(answer or [])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (block_ms or 0) / 1000
    while True:
        pipe = redis.pipeline(transaction=False)
        for stream, after in streams.items():
            one: dict[Any, Any] = {stream: after}
            pipe.xreadgroup(group, consumer, one, count=count)
        pairs = [pair for answer in await pipe.execute() for pair in answer or []]
        left = deadline - loop.time()
        if block_ms is None or any(entries for _, entries in pairs) or left <= 0:
            return pairs
        await asyncio.sleep(min(CLUSTER_POLL_MS / 1000, left))
