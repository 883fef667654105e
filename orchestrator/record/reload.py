"""Open orders Redis had lost, put back from the record.

A service-point actor that finds its open set naming an order whose snapshot is gone
asks for it (`keys.missing_orders`). The drainer, which reaches both Redis and the
record, answers: the record's last version of the order and its journal go back into
Redis in one script, only while the snapshot is still absent and the order still open
there. Every reload is an alarm (`windowpay_live_order_reloads_total`, an ERROR in the
log): what happened to the order after the version the record had is lost, and the
provider must be asked about it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.domain.records import decode_order, is_open
from orchestrator.record.metrics import LIVE_ORDER_RELOADS
from orchestrator.record.reader import RecordReader
from orchestrator.store import keys
from orchestrator.store.redis_store import RedisStore

log = logging.getLogger(__name__)


class Reloader:
    def __init__(
        self,
        redis: Redis,
        pool: AsyncConnectionPool[Any],
        service_points: Sequence[str],
        retention_ms: int,
    ) -> None:
        self._redis = redis
        self._record = RecordReader(pool)
        self._store = RedisStore(redis)
        self._points = list(service_points)
        self._retention_ms = retention_ms
        self._not_in_record: set[str] = set()  # told once each

    async def run_once(self) -> int:
        """Answer every request for a missing order; how many were put back."""
        pipe = self._redis.pipeline(transaction=False)
        for sp in self._points:
            pipe.smembers(keys.missing_orders(sp))
        asked = [
            (sp, order_id.decode())
            for sp, members in zip(self._points, await pipe.execute(), strict=True)
            for order_id in sorted(members)
        ]
        reloaded = 0
        for sp, order_id in asked:
            reloaded += await self._reload(sp, order_id)
        return reloaded

    async def _reload(self, sp: str, order_id: str) -> int:
        recorded = await self._record.recorded_order(order_id)
        if recorded is None:
            if order_id not in self._not_in_record:
                self._not_in_record.add(order_id)
                LIVE_ORDER_RELOADS.labels("not_in_record").inc()
                log.error(
                    "order %s is missing from Redis and the record does not have it: it "
                    "cannot be reloaded, and stays missing at its service point",
                    order_id,
                    extra={"order_id": order_id},
                )
            return 0
        order = decode_order(recorded.snapshot)
        done = await self._store.restore(
            recorded,
            open_at=order["window_id"] if is_open(order) else "",
            retention_ms=self._retention_ms,
            only_if_open=True,  # the actor may have dropped it meanwhile
        )
        if not done:
            return 0
        LIVE_ORDER_RELOADS.labels("reloaded").inc()
        log.error(
            "order %s was missing from Redis: reloaded from the record at version %d (%s); "
            "anything after that version is lost, ask the provider about its trades and "
            "refunds",
            order_id,
            order["version"],
            order["state"],
            extra={"order_id": order_id},
        )
        return 1
