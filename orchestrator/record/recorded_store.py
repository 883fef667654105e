"""The front door's and the back office's reads with the record behind Redis: an order
or receipt that has left Redis is answered from PostgreSQL, and the orders of a business
day are read from PostgreSQL, topped up with what Redis holds newer (the drainer may be
a moment behind, or PostgreSQL away)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis

from orchestrator.domain.errors import Unavailable
from orchestrator.domain.records import OrderRecord, decode_orders
from orchestrator.record.reader import RecordReader
from orchestrator.store.receipts import ReceiptStore
from orchestrator.store.redis_store import RedisStore

log = logging.getLogger(__name__)
RecordErrors = (psycopg.Error, PoolTimeout, OSError)


class RecordedStore(RedisStore):
    def __init__(self, redis: Redis, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(redis)
        self.record = RecordReader(pool)

    async def order(self, order_id: str) -> bytes | None:
        live = await super().order(order_id)
        if live is not None:
            return live
        try:
            return await self.record.order(order_id)
        except RecordErrors as error:
            log.warning("record unavailable for order %s: %s", order_id, error)
            return None

    async def order_to_refund(self, order_id: str) -> bytes | None:
        """The order's snapshot from Redis or the record; raises Unavailable when only the
        record could say (a refund of an old order must not be told NOT_FOUND while
        PostgreSQL is away)."""
        live = await super().order(order_id)
        if live is not None:
            return live
        try:
            return await self.record.order(order_id)
        except RecordErrors as error:
            log.warning("record unavailable for order %s: %s", order_id, error)
            raise Unavailable(
                f"order {order_id} is not in the live store and the record cannot be read "
                "right now; retry with the same request_id"
            ) from error

    async def order_of_case(self, business_no: str) -> bytes | None:
        live = await super().order_of_case(business_no)
        if live is not None:
            return live
        try:
            return await self.record.order_of_case(business_no)
        except RecordErrors as error:
            log.warning("record unavailable for case %s: %s", business_no, error)
            return None

    async def orders_of_days(
        self, service_points: Sequence[str], days: Sequence[str]
    ) -> list[OrderRecord]:
        """The record's orders of the days, each replaced by Redis's copy when that is
        newer; each snapshot decoded once, off the event loop. Raises when PostgreSQL
        cannot answer: a settlement must not be partial."""
        dates = [datetime.strptime(day, "%Y%m%d").date() for day in days]
        recorded = await asyncio.to_thread(
            decode_orders, await self.record.orders_of_days(service_points, dates)
        )
        live = await super().orders_of_days(service_points, days)
        merged: dict[str, OrderRecord] = {}
        for order in [*recorded, *live]:
            held = merged.get(order["order_id"])
            if held is None or order["version"] > held["version"]:
                merged[order["order_id"]] = order
        return [merged[order_id] for order_id in sorted(merged)]

    def receipt_store(self) -> ReceiptStore:
        return RecordedReceipts(self.redis, self.record)


class RecordedReceipts(ReceiptStore):
    def __init__(self, redis: Redis, record: RecordReader) -> None:
        super().__init__(redis)
        self._record = record

    async def of_order(self, order_id: str) -> bytes | None:
        live = await super().of_order(order_id)
        if live is not None:
            return live
        try:
            return await self._record.receipt_of_order(order_id)
        except RecordErrors as error:
            log.warning("record unavailable for the receipt of %s: %s", order_id, error)
            return None

    async def by_number(self, code: str, number: str) -> bytes | None:
        live = await super().by_number(code, number)
        if live is not None:
            return live
        try:
            return await self._record.receipt(code, number)
        except RecordErrors as error:
            log.warning("record unavailable for receipt %s %s: %s", code, number, error)
            return None
