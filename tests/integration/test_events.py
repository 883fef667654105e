"""The front door's event hub: what the actors publish reaches the Pay calls and
WatchWindow streams waiting for it, whatever else turns up on the channel."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from orchestrator.frontdoor.events import EventHub
from orchestrator.store import keys
from orchestrator.store.order_events import OrderEventSource
from tests.support import unique_prefix


async def test_a_malformed_message_on_the_channel_does_not_stop_the_events(redis: Redis) -> None:
    hub = EventHub(OrderEventSource(redis))
    await hub.start()
    try:
        sp = unique_prefix()
        order_id, window_id = f"{sp}-A", f"{sp}W1"
        with hub.follow_order(order_id) as order_feed, hub.follow_window(window_id) as window_feed:
            await redis.publish(keys.events(sp), b"e")  # not an actor's event
            await redis.publish(keys.events(sp), b"\xff\xfe 1\n{}")  # nor this
            await redis.publish(keys.events(sp), f"{order_id} {window_id} 3\n".encode() + b"{}")
            event = await asyncio.wait_for(order_feed.get(), 5)
            assert (event.order_id, event.window_id, event.version) == (order_id, window_id, 3)
            assert event.snapshot == b"{}"
            assert await asyncio.wait_for(window_feed.get(), 5) == event
    finally:
        await hub.stop()
