"""What the front door reads about orders and receipts: the `OrderReads` port, and its
Redis implementation. The record's implementation (record/recorded_reads.py) holds one
of these and asks PostgreSQL for what has left Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from orchestrator.domain import ids
from orchestrator.domain.records import OrderRecord, decode_orders
from orchestrator.store import keys
from orchestrator.store.receipts import ReceiptStore


class ReceiptReads(Protocol):
    async def of_order(self, order_id: str) -> bytes | None:
        """The receipt record of the order, None if it has none (yet)."""
        ...

    async def by_number(self, code: str, number: str) -> bytes | None: ...


class OrderReads(Protocol):
    """Snapshots are the stored bytes, decoded by the caller (domain/records.py); only
    `orders_of_days`, a whole business day, decodes them itself, off the event loop."""

    async def order(self, order_id: str) -> bytes | None:
        """The order's snapshot, None if unknown (or its id is malformed)."""
        ...

    async def order_to_refund(self, order_id: str) -> bytes | None:
        """The order a refund names, checked before the supervisor's PIN; raises
        Unavailable when it cannot be told whether the order exists."""
        ...

    async def order_of_case(self, business_no: str) -> bytes | None:
        """The order of a business case, None if there is none."""
        ...

    async def window_orders(self, sp: str, window_id: str) -> list[bytes]:
        """Snapshots of the window's orders that still need the actor."""
        ...

    async def orders_of_days(
        self, service_points: Sequence[str], days: Sequence[str]
    ) -> list[OrderRecord]:
        """The orders that changed on any of the days (YYYYMMDD), by order id."""
        ...

    async def late_success(self, attempt_id: str) -> str | None:
        """The trade number reconciliation found kept for this attempt, if any."""
        ...

    def receipts(self) -> ReceiptReads: ...


async def order_snapshot(redis: Redis, order_id: str) -> bytes | None:
    """The order's snapshot in Redis; None if absent or the id names no service point."""
    try:
        sp = ids.service_point_of(order_id)
    except ids.MalformedOrderId:
        return None
    value: bytes | None = await redis.hget(keys.order(sp, order_id), "s")  # type: ignore[assignment]
    return value


class RedisOrderReads:
    """The live orders, as Redis holds them."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._receipts = ReceiptStore(redis)

    async def order(self, order_id: str) -> bytes | None:
        return await order_snapshot(self._redis, order_id)

    async def order_to_refund(self, order_id: str) -> bytes | None:
        return await self.order(order_id)

    async def order_id_of_case(self, business_no: str) -> str | None:
        """The order a business case names in Redis (its snapshot may have left)."""
        order_id: bytes | None = await self._redis.get(keys.business_case(business_no))  # type: ignore[assignment]
        if order_id is None:
            return None
        return order_id.decode().removesuffix(keys.RECORDED)

    async def order_of_case(self, business_no: str) -> bytes | None:
        order_id = await self.order_id_of_case(business_no)
        return None if order_id is None else await self.order(order_id)

    async def window_orders(self, sp: str, window_id: str) -> list[bytes]:
        open_orders: dict[bytes, bytes] = await self._redis.hgetall(keys.open_orders(sp))  # type: ignore[assignment]
        wanted = [o.decode() for o, w in open_orders.items() if w.decode() == window_id]
        if not wanted:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for order_id in wanted:
            pipe.hget(keys.order(sp, order_id), "s")
        return [s for s in await pipe.execute() if s is not None]

    async def orders_of_days(
        self, service_points: Sequence[str], days: Sequence[str]
    ) -> list[OrderRecord]:
        """A busy day is thousands of snapshots: they are decoded off the event loop."""
        pipe = self._redis.pipeline(transaction=False)
        for sp in service_points:
            for day in days:
                pipe.smembers(keys.day(sp, day))
        order_ids = sorted({o.decode() for members in await pipe.execute() for o in members})
        if not order_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for order_id in order_ids:
            pipe.hget(keys.order(ids.service_point_of(order_id), order_id), "s")
        snapshots = [s for s in await pipe.execute() if s is not None]
        return await asyncio.to_thread(decode_orders, snapshots)

    async def late_success(self, attempt_id: str) -> str | None:
        found = await self._redis.get(keys.late_success(attempt_id))
        return found.decode() if isinstance(found, bytes) else found

    def receipts(self) -> ReceiptStore:
        return self._receipts
