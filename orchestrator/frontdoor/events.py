"""Order change events for the front door, from Redis pub/sub.

Actors publish every committed snapshot on their service point's channel, prefixed
with "order_id window_id version". One pattern subscription per front door (read by
store/order_events.py) feeds the Pay calls waiting for an outcome and the WatchWindow
streams. Pub/sub may drop messages on a reconnect, so followers then get RESYNC and
re-read the orders.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from orchestrator.store.order_events import OrderEventSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    order_id: str
    window_id: str
    version: int
    snapshot: bytes


RESYNC = Event("", "", -1, b"")  # events may have been lost: read the state again

Feed = asyncio.Queue[Event]


class EventHub:
    def __init__(self, source: OrderEventSource) -> None:
        self._source = source
        self._orders: defaultdict[str, set[Feed]] = defaultdict(set)
        self._windows: defaultdict[str, set[Feed]] = defaultdict(set)
        self._overflow: dict[Feed, Callable[[], None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._reader = asyncio.create_task(
            self._source.read_forever(self._on_subscribed, self._dispatch)
        )
        await self._subscribed.wait()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    @contextmanager
    def follow_order(self, order_id: str) -> Iterator[Feed]:
        feed: Feed = asyncio.Queue()
        self._orders[order_id].add(feed)
        try:
            yield feed
        finally:
            self._forget(self._orders, order_id, feed)

    @contextmanager
    def follow_window(
        self, window_id: str, limit: int = 0, on_overflow: Callable[[], None] | None = None
    ) -> Iterator[Feed]:
        """A window's events; with a limit, at most that many wait for a slow reader,
        and on_overflow is told (once) when one more would not fit."""
        feed: Feed = asyncio.Queue(maxsize=limit)
        self._windows[window_id].add(feed)
        if on_overflow is not None:
            self._overflow[feed] = on_overflow
        try:
            yield feed
        finally:
            self._overflow.pop(feed, None)
            self._forget(self._windows, window_id, feed)

    def waiting(self) -> tuple[int, int]:
        """Window feeds open, and the events waiting in them for their readers."""
        feeds = [feed for feeds in self._windows.values() for feed in feeds]
        return len(feeds), sum(feed.qsize() for feed in feeds)

    def _put(self, feed: Feed, event: Event) -> None:
        try:
            feed.put_nowait(event)
        except asyncio.QueueFull:
            told = self._overflow.pop(feed, None)
            if told is not None:
                told()

    @staticmethod
    def _forget(table: defaultdict[str, set[Feed]], key: str, feed: Feed) -> None:
        feeds = table.get(key)
        if feeds is not None:
            feeds.discard(feed)
            if not feeds:
                del table[key]

    def _on_subscribed(self) -> None:
        """Subscribed again after a loss: what was published meanwhile is gone."""
        if self._subscribed.is_set():
            self._broadcast(RESYNC)
        self._subscribed.set()

    def _dispatch(self, data: bytes) -> None:
        header, _, snapshot = data.partition(b"\n")
        try:
            order_id, window_id, version = header.decode().split(" ")
            event = Event(order_id, window_id, int(version), snapshot)
        except ValueError:  # not an actor's event: dropping the reader would stall every Pay
            log.warning("ignoring a malformed order event: %r", header[:80])
            return
        for feed in self._orders.get(order_id, ()):
            feed.put_nowait(event)
        for feed in self._windows.get(window_id, ()):
            self._put(feed, event)

    def _broadcast(self, event: Event) -> None:
        for table in (self._orders, self._windows):
            for feeds in table.values():
                for feed in feeds:
                    self._put(feed, event)
