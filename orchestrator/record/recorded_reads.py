"""The front door's and the back office's reads with the record behind Redis: an order
or receipt that has left Redis is answered from PostgreSQL, and the orders of a business
day are read from PostgreSQL, topped up with what Redis holds newer (the drainer may be
a moment behind, or PostgreSQL away).

`RecordedReads` implements `OrderReads` (store/reads.py) by holding the Redis reads and a
`RecordReader`: it asks Redis first and the record only for what Redis no longer has."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Protocol

import psycopg
from psycopg_pool import PoolTimeout

from orchestrator.domain.errors import Unavailable
from orchestrator.domain.records import OrderRecord, decode_orders
from orchestrator.record.reader import RecordReader
from orchestrator.store.reads import OrderReads, ReceiptReads

log = logging.getLogger(__name__)
RecordErrors = (psycopg.Error, PoolTimeout, OSError)


async def _unless_away(what: str, read: Awaitable[bytes | None]) -> bytes | None:
    """The record's answer; None, with a warning, when the record cannot be read."""
    try:
        return await read
    except RecordErrors as error:
        log.warning("record unavailable for %s: %s", what, error)
        return None


class LiveReceipts(ReceiptReads, Protocol):
    async def number_of_order(self, order_id: str) -> tuple[str, str] | None:
        """The (code, number) the live store binds to the order, its record held or not."""
        ...


class LiveReads(OrderReads, Protocol):
    """The live store's reads (store/reads.py `RedisOrderReads`), with what the record
    needs to follow an index whose order has left."""

    async def order_id_of_case(self, business_no: str) -> str | None: ...

    def receipts(self) -> LiveReceipts: ...


class RecordedReads:
    def __init__(self, live: LiveReads, record: RecordReader) -> None:
        self._live = live
        self._record = record
        self._receipts = RecordedReceipts(live.receipts(), record)

    async def order(self, order_id: str) -> bytes | None:
        live = await self._live.order(order_id)
        if live is not None:
            return live
        return await _unless_away(f"order {order_id}", self._record.order(order_id))

    async def order_to_refund(self, order_id: str) -> bytes | None:
        """The order's snapshot from Redis or the record; raises Unavailable when only the
        record could say (a refund of an old order must not be told NOT_FOUND while
        PostgreSQL is away)."""
        live = await self._live.order(order_id)
        if live is not None:
            return live
        try:
            return await self._record.order(order_id)
        except RecordErrors as error:
            log.warning("record unavailable for order %s: %s", order_id, error)
            raise Unavailable(
                f"order {order_id} is not in the live store and the record cannot be read "
                "right now; retry with the same request_id"
            ) from error

    async def order_of_case(self, business_no: str) -> bytes | None:
        """The order Redis's case index names (from Redis or the record), else the
        record's latest order of the case."""
        order_id = await self._live.order_id_of_case(business_no)
        if order_id is not None:
            named = await self.order(order_id)
            if named is not None:
                return named
        return await _unless_away(f"case {business_no}", self._record.order_of_case(business_no))

    async def window_orders(self, sp: str, window_id: str) -> list[bytes]:
        """Open orders are always in Redis."""
        return await self._live.window_orders(sp, window_id)

    async def orders_of_days(
        self, service_points: Sequence[str], days: Sequence[str]
    ) -> list[OrderRecord]:
        """The record's orders of the days, each replaced by Redis's copy when that is
        newer; each snapshot decoded once, off the event loop. Raises when PostgreSQL
        cannot answer: a settlement must not be partial."""
        dates = [datetime.strptime(day, "%Y%m%d").date() for day in days]
        recorded = await asyncio.to_thread(
            decode_orders, await self._record.orders_of_days(service_points, dates)
        )
        live = await self._live.orders_of_days(service_points, days)
        merged: dict[str, OrderRecord] = {}
        for order in [*recorded, *live]:
            held = merged.get(order["order_id"])
            if held is None or order["version"] > held["version"]:
                merged[order["order_id"]] = order
        return [merged[order_id] for order_id in sorted(merged)]

    async def late_success(self, attempt_id: str) -> str | None:
        return await self._live.late_success(attempt_id)

    def receipts(self) -> RecordedReceipts:
        return self._receipts


class RecordedReceipts:
    def __init__(self, live: LiveReceipts, record: RecordReader) -> None:
        self._live = live
        self._record = record

    async def of_order(self, order_id: str) -> bytes | None:
        """The receipt Redis binds to the order (from Redis or the record), else the
        record's receipt of the order."""
        bound = await self._live.number_of_order(order_id)
        if bound is not None:
            held = await self.by_number(*bound)
            if held is not None:
                return held
        return await _unless_away(
            f"the receipt of {order_id}", self._record.receipt_of_order(order_id)
        )

    async def by_number(self, code: str, number: str) -> bytes | None:
        live = await self._live.by_number(code, number)
        if live is not None:
            return live
        return await _unless_away(f"receipt {code} {number}", self._record.receipt(code, number))
