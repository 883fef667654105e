"""The service points' outbox streams, read through consumer groups: each reader (a
business-system subscriber, the receipt issuer) has its own durable position, events
delivered but not acknowledged are delivered again, and each stream keeps commit order
(so every business case, which lives at one service point, keeps its order)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from orchestrator.store import keys
from orchestrator.store.connect import is_cluster
from orchestrator.store.stream_groups import read_group


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    event_id: str  # "<service point>-<stream id>": stable across redeliveries
    kind: str  # ORDER_PAID | ORDER_REFUNDED
    at_ms: int
    refund_id: str
    order: bytes

    @property
    def service_point(self) -> str:
        return self.event_id.split("-", 1)[0]


def split_event_id(event_id: str) -> tuple[str, str]:
    sp, sep, stream_id = event_id.partition("-")
    if not sep or not sp or not stream_id:
        raise ValueError(f"not a payment event id: {event_id!r}")
    return sp, stream_id


class Outbox:
    def __init__(self, redis: Redis, service_points: Sequence[str]) -> None:
        self._redis = redis
        # Blocking reads get connections of their own: a connection that waits on
        # XREADGROUP BLOCK must never be handed to another command. A cluster's reads
        # do not block (store/stream_groups.py): they share the client.
        self._reader = (
            redis
            if is_cluster(redis)
            else Redis(connection_pool=ConnectionPool(**redis.connection_pool.connection_kwargs))
        )
        self._streams = {keys.outbox(sp): sp for sp in service_points}
        self._unfinished: set[asyncio.Future[Any]] = set()

    async def close(self) -> None:
        """Let reads cut short by a cancellation finish (within their block time), so
        that no connection is dropped mid-reply, then close the reader."""
        await asyncio.gather(*self._unfinished, return_exceptions=True)
        if self._reader is not self._redis:
            await self._reader.aclose(close_connection_pool=True)

    async def join(self, group: str) -> None:
        """Create the group on every stream (from the beginning) unless it exists."""
        pipe = self._redis.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xgroup_create(stream, group, id="0", mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                raise result

    async def events(
        self, group: str, consumer: str, *, block_ms: int = 1000, count: int = 100
    ) -> AsyncIterator[OutboxEvent | None]:
        """Unacknowledged events first, then new ones as they come; None after each idle
        wait, so that the caller can do its housekeeping."""
        async for batch in self.batches(group, consumer, block_ms=block_ms, count=count):
            if not batch:
                yield None
            for event in batch:
                yield event

    async def batches(
        self, group: str, consumer: str, *, block_ms: int = 1000, count: int = 100
    ) -> AsyncIterator[list[OutboxEvent]]:
        """The same, a page at a time (empty after an idle wait)."""
        after = dict.fromkeys(self._streams, "0")
        while True:  # the pending entries, page by page
            page = await self._read(group, consumer, after, count, None)
            if not page:
                break
            for event, stream in page:
                after[stream] = event.event_id.split("-", 1)[1]
            yield [event for event, _ in page]
        fresh = dict.fromkeys(self._streams, ">")
        while True:
            yield [event for event, _ in await self._read(group, consumer, fresh, count, block_ms)]

    async def ack(self, group: str, event_ids: Sequence[str]) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for event_id in event_ids:
            sp, stream_id = split_event_id(event_id)
            pipe.xack(keys.outbox(sp), group, stream_id)
        return sum(int(n) for n in await pipe.execute()) if event_ids else 0

    async def _read(
        self, group: str, consumer: str, after: dict[str, str], count: int, block: int | None
    ) -> list[tuple[OutboxEvent, str]]:
        streams: dict[Any, Any] = dict(after)
        read = asyncio.ensure_future(
            read_group(self._reader, group, consumer, streams, count=count, block_ms=block)
        )
        try:
            answer: Any = await asyncio.shield(read)
        except asyncio.CancelledError:
            # What the read returns stays pending in the group: delivered next time.
            self._unfinished.add(read)
            read.add_done_callback(self._unfinished.discard)
            raise
        page = []
        for stream, entries in answer or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            sp = self._streams[name]
            for stream_id, fields in entries:
                if not fields:  # deleted while pending
                    continue
                page.append(
                    (
                        OutboxEvent(
                            event_id=f"{sp}-{stream_id.decode()}",
                            kind=fields[b"kind"].decode(),
                            at_ms=int(fields[b"at"]),
                            refund_id=fields[b"refund"].decode(),
                            order=fields[b"order"],
                        ),
                        name,
                    )
                )
        return page


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """At most one holder at a time across all front doors; lapses if not renewed."""

    def __init__(self, redis: Redis, key: str, ttl_ms: int = 10_000) -> None:
        self._redis = redis
        self._key = key
        self._ttl_ms = ttl_ms
        self._token = uuid.uuid4().hex
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._renewed_at = 0.0

    async def take(self) -> bool:
        taken = await self._redis.set(self._key, self._token, nx=True, px=self._ttl_ms)
        self._renewed_at = time.monotonic()
        return bool(taken)

    async def keep(self) -> bool:
        """Renew when a third of the time has passed; False if the lease was lost."""
        if time.monotonic() - self._renewed_at < self._ttl_ms / 3000:
            return True
        self._renewed_at = time.monotonic()
        return bool(await self._renew(keys=[self._key], args=[self._token, self._ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self._key], args=[self._token])


# What a call to Redis raises when it cannot answer; on a Redis Cluster also redis-py's
# own RedisClusterException (a slot no node serves for a moment, in a failover), which
# is not a RedisError.
STORE_ERRORS = (RedisError, RedisClusterException, OSError)


class Subscriptions:
    """The business systems' side of the outboxes: an outbox reader per stream, and the
    lease that lets one front door at a time stream to a subscriber."""

    def __init__(self, redis: Redis, service_points: Sequence[str]) -> None:
        self._redis = redis
        self._points = list(service_points)

    def outbox(self) -> Outbox:
        return Outbox(self._redis, self._points)

    def lease(self, subscriber: str) -> Lease:
        return Lease(self._redis, keys.lease(subscriber))
