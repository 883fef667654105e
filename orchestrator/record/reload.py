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

import orjson
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.domain.order import Order
from orchestrator.record.metrics import LIVE_ORDER_RELOADS
from orchestrator.store import keys

log = logging.getLogger(__name__)

# KEYS: the snapshot, the journal, the missing set, the open set.
# ARGV: order id, version, snapshot, retention (ms; 0 for an open order), journal entries.
_PUT_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[4], ARGV[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
redis.call('DEL', KEYS[2])
for i = 5, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
if ARGV[4] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""


class Reloader:
    def __init__(
        self,
        redis: Redis,
        pool: AsyncConnectionPool[Any],
        service_points: Sequence[str],
        retention_ms: int,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._points = list(service_points)
        self._retention_ms = retention_ms
        self._put_back = redis.register_script(_PUT_BACK)
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
        snapshot, journal = await self._recorded(order_id)
        if snapshot is None:
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
        order = Order.from_record(orjson.loads(snapshot))
        ttl = 0 if order.is_open else self._retention_ms
        names = [
            keys.order(sp, order_id),
            keys.journal(sp, order_id),
            keys.missing_orders(sp),
            keys.open_orders(sp),
        ]
        done = await self._put_back(
            keys=names, args=[order_id, order.version, snapshot, ttl, *journal]
        )
        if done != 1:
            return 0
        LIVE_ORDER_RELOADS.labels("reloaded").inc()
        log.error(
            "order %s was missing from Redis: reloaded from the record at version %d (%s); "
            "anything after that version is lost, ask the provider about its trades and "
            "refunds",
            order_id,
            order.version,
            order.state,
            extra={"order_id": order_id},
        )
        return 1

    async def _recorded(self, order_id: str) -> tuple[bytes | None, list[bytes]]:
        """The record's snapshot of the order and its journal, oldest entry first."""
        async with self._pool.connection(timeout=5.0) as conn, conn.cursor() as cur:
            await cur.execute("SELECT snapshot::text FROM orders WHERE order_id = %s", (order_id,))
            row = await cur.fetchone()
            if row is None:
                return None, []
            await cur.execute(
                "SELECT entry::text FROM journal WHERE order_id = %s ORDER BY version",
                (order_id,),
            )
            entries = [entry.encode() for (entry,) in await cur.fetchall()]
        return row[0].encode(), entries
