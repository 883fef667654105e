"""The actors' order events as Redis carries them: every committed snapshot is published
on its service point's channel (store/commit.lua), and one pattern subscription reads
them all. Pub/sub drops what is sent while a subscriber reconnects, so the reader says
when it has subscribed again (frontdoor/events.py then has its followers re-read)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from orchestrator.store import keys
from orchestrator.store.connect import is_cluster
from orchestrator.store.outbox import STORE_ERRORS

log = logging.getLogger(__name__)


class OrderEventSource:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def read_forever(
        self, on_subscribed: Callable[[], None], on_message: Callable[[bytes], None]
    ) -> None:
        """Subscribe to every service point's events and hand each message on, until
        cancelled; a lost subscription is taken again (backing off up to 2 s), and
        `on_subscribed` is called each time the subscription is in place."""
        delay = 0.05
        lost = False
        while True:
            pubsub = self._redis.pubsub()
            try:
                if is_cluster(self._redis):
                    # A cluster's pub/sub connects to the node of the pattern's slot (it
                    # hears every node's messages there): the slots must be known first,
                    # and read again after a lost subscription (a failover).
                    cluster = cast(RedisCluster, self._redis)
                    await cluster.initialize()
                    if lost:
                        await cluster.nodes_manager.initialize()
                await pubsub.psubscribe(keys.EVENTS_PATTERN)
                on_subscribed()
                delay, lost = 0.05, False
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        on_message(message["data"])
            except STORE_ERRORS as error:
                log.warning("event subscription lost (%s); resubscribing", error)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
