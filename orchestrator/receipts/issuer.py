"""Issues one electronic receipt per paid order, from the service points' outbox.

The issuer is a consumer group ("receipts") on the outbox streams: a paid order gets
the next number of its receipt code (allocated and bound to the order atomically), a
refund marks the receipt. Everything is derived from the event, so handling an event
twice (after a crash, before its acknowledgement) writes the same receipt again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from redis.asyncio import Redis

from orchestrator.config import Config
from orchestrator.domain.calendar import local_day
from orchestrator.domain.records import OrderRecord, decode_order
from orchestrator.receipts.numbering import check_code, receipt_code, yuan_in_words
from orchestrator.store.outbox import STORE_ERRORS, Outbox, OutboxEvent
from orchestrator.store.receipts import ReceiptStore

log = logging.getLogger(__name__)
GROUP = "receipts"
PAGE = 100
# After a page that was not full, the issuer waits this long before reading again: the
# receipts of a steady trickle of payments are issued in pages (a few round trips each)
# rather than one by one, a receipt is ready at most this much later.
LINGER_S = 0.05


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
        """Until stopped: handle the outbox events a page at a time, then acknowledge."""
        delay = 0.1
        try:
            while not self._stopping:
                try:
                    await self._outbox.join(GROUP)
                    async for batch in self._outbox.batches(GROUP, self._consumer, count=PAGE):
                        if batch:
                            await self.handle(batch)
                            await self._outbox.ack(GROUP, [e.event_id for e in batch])
                            if len(batch) < PAGE:
                                await asyncio.sleep(LINGER_S)  # let the next page fill
                        if self._stopping:
                            return  # type: ignore[unreachable]  # stop() may run meanwhile
                        delay = 0.1
                except STORE_ERRORS as error:
                    log.warning("receipt issuer lost Redis (%s); retrying", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            await self._outbox.close()

    async def handle(self, events: list[OutboxEvent]) -> None:
        """Receipts for the paid orders (two round trips for the whole page), then the
        refund marks, in stream order."""
        paid = [(decode_order(e.order), e.at_ms) for e in events if e.kind == "ORDER_PAID"]
        # A paid order has its paid_at; the event's time stands in as for a refund's.
        await self.issue_all([(order, order["paid_at"] or at_ms) for order, at_ms in paid])
        for event in events:
            if event.kind == "ORDER_REFUNDED":
                order = decode_order(event.order)
                [record] = await self.issue_all([(order, order["paid_at"] or event.at_ms)])
                await self._mark_refunds(record, order)

    async def issue(self, order: OrderRecord, paid_at_ms: int) -> dict[str, Any]:
        [record] = await self.issue_all([(order, paid_at_ms)])
        return record

    async def issue_all(self, orders: list[tuple[OrderRecord, int]]) -> list[dict[str, Any]]:
        """Each order's receipt: the one it has, or a new one with the next number."""
        if not orders:
            return []
        settings = self._config.receipts
        codes = [
            receipt_code(
                settings.region,
                settings.kind,
                settings.form,
                local_day(paid_at, self._config.settings.zone).year,
            )
            for _, paid_at in orders
        ]
        numbers = await self._store.allocate(
            [(code, order["order_id"]) for code, (order, _) in zip(codes, orders, strict=True)]
        )
        records: list[dict[str, Any]] = []
        fresh: list[tuple[str, str, bytes]] = []
        for (order, paid_at), (code, number, new) in zip(orders, numbers, strict=True):
            stored = None if new else await self._store.by_number(code, number)
            if stored is not None:
                records.append(orjson.loads(stored))
                continue
            record = self._receipt(order, paid_at, code, number)
            records.append(record)
            fresh.append((code, number, orjson.dumps(record)))
        await self._store.save_all(fresh)
        self.issued += len(fresh)
        return records

    def _receipt(
        self, order: OrderRecord, paid_at_ms: int, code: str, number: str
    ) -> dict[str, Any]:
        paying = next(a for a in order["attempts"] if a["attempt_id"] == order["paid_by"])
        receipt = {
            "receipt_code": code,
            "receipt_no": number,
            "check_code": check_code(
                self._secret, code, number, order["order_id"], order["amount_fen"]
            ),
            "order_id": order["order_id"],
            "business_no": order["business_no"],
            "payer_name": order["payer_name"],
            "created_by": order.get("created_by", ""),
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
            "issuing_unit": self._config.receipts.issuing_unit,
            "issuer": f"{self._names.get(order['service_point_id'], '')} "
            f"{order['window_id']}窗口".strip(),
            "issued_at": paid_at_ms,
            "status": "ISSUED",
            "refunded_fen": 0,
            "channel": paying["channel"],
        }
        # The order's office and site, when the deployment declares offices (its issuing
        # unit is still the deployment's: per-office receipts are not built yet).
        if "office_id" in order:
            receipt["office_id"] = order["office_id"]
        if "site_id" in order:
            receipt["site_id"] = order["site_id"]
        return receipt

    async def _mark_refunds(self, record: dict[str, Any], order: OrderRecord) -> dict[str, Any]:
        refunded = order["refunded_fen"]
        if refunded <= record["refunded_fen"]:
            return record  # an older event than the one already applied
        record["refunded_fen"] = refunded
        record["status"] = "REFUNDED" if refunded >= record["total_fen"] else "PARTIALLY_REFUNDED"
        await self._store.save(record["receipt_code"], record["receipt_no"], orjson.dumps(record))
        return record
