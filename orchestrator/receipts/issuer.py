"""Issues one electronic receipt per paid order, from the service points' outbox.

The issuer is a consumer group ("receipts") on the outbox streams: a paid order gets
the next number of its receipt code (allocated and bound to the order atomically), a
refund marks the receipt. Everything is derived from the event, so handling an event
twice (after a crash, before its acknowledgement) writes the same receipt again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.config import Config
from orchestrator.domain.calendar import local_day
from orchestrator.receipts.numbering import check_code, receipt_code, yuan_in_words
from orchestrator.store.outbox import Outbox, OutboxEvent
from orchestrator.store.receipts import ReceiptStore

log = logging.getLogger(__name__)
GROUP = "receipts"


class ReceiptIssuer:
    def __init__(self, redis: Redis, config: Config, secret: bytes, consumer: str = "issuer"):
        self._config = config
        self._secret = secret
        self._consumer = consumer
        self._store = ReceiptStore(redis)
        self._outbox = Outbox(redis, [sp.id for sp in config.deployment.service_points])
        self._names = {sp.id: sp.name for sp in config.deployment.service_points}
        self._stopping = False
        self.issued = 0

    def stop(self) -> None:
        """Ask `run` to return after its current read (within a second)."""
        self._stopping = True

    async def run(self) -> None:
        """Until stopped: handle each outbox event, then acknowledge it."""
        delay = 0.1
        try:
            while not self._stopping:
                try:
                    await self._outbox.join(GROUP)
                    async for event in self._outbox.events(GROUP, self._consumer):
                        if event is not None:
                            await self.handle(event)
                            await self._outbox.ack(GROUP, [event.event_id])
                        if self._stopping:
                            return  # type: ignore[unreachable]  # stop() may run meanwhile
                        delay = 0.1
                except (RedisError, OSError) as error:
                    log.warning("receipt issuer lost Redis (%s); retrying", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            await self._outbox.close()

    async def handle(self, event: OutboxEvent) -> dict[str, Any]:
        order = orjson.loads(event.order)
        if event.kind == "ORDER_PAID":
            return await self.issue(order, event.at_ms)
        record = await self.issue(order, order["paid_at"] or event.at_ms)
        return await self._mark_refunds(record, order)

    async def issue(self, order: Mapping[str, Any], paid_at_ms: int) -> dict[str, Any]:
        settings = self._config.receipts
        year = local_day(paid_at_ms, self._config.settings.zone).year
        code = receipt_code(settings.region, settings.kind, settings.form, year)
        code, number = await self._store.allocate(code, order["order_id"])
        existing = await self._store.by_number(code, number)
        if existing is not None:
            record: dict[str, Any] = orjson.loads(existing)
            return record
        paying = next(a for a in order["attempts"] if a["attempt_id"] == order["paid_by"])
        record = {
            "receipt_code": code,
            "receipt_no": number,
            "check_code": check_code(
                self._secret, code, number, order["order_id"], order["amount_fen"]
            ),
            "order_id": order["order_id"],
            "business_no": order["business_no"],
            "payer_name": order["payer_name"],
            "items": [
                {
                    "fee_code": line["fee_code"],
                    "name": line["name"],
                    "unit": line["unit"],
                    "standard_fen": line["unit_price_fen"],
                    "quantity": line["quantity"],
                    "amount_fen": line["amount_fen"],
                }
                for line in order["lines"]
            ],
            "total_fen": order["amount_fen"],
            "total_in_words": yuan_in_words(order["amount_fen"]),
            "issuing_unit": settings.issuing_unit,
            "issuer": f"{self._names.get(order['service_point_id'], '')} "
            f"{order['window_id']}窗口".strip(),
            "issued_at": paid_at_ms,
            "status": "ISSUED",
            "refunded_fen": 0,
            "channel": paying["channel"],
        }
        await self._store.save(code, number, orjson.dumps(record))
        self.issued += 1
        return record

    async def _mark_refunds(
        self, record: dict[str, Any], order: Mapping[str, Any]
    ) -> dict[str, Any]:
        refunded = order["refunded_fen"]
        if refunded <= record["refunded_fen"]:
            return record  # an older event than the one already applied
        record["refunded_fen"] = refunded
        record["status"] = "REFUNDED" if refunded >= record["total_fen"] else "PARTIALLY_REFUNDED"
        await self._store.save(record["receipt_code"], record["receipt_no"], orjson.dumps(record))
        return record
