"""Orders that have left the store, recalled from the record when a command needs one.

A closed order's keys leave Redis after the retention (docs/RECORD.md). A refund, or a
late success's refund, may come weeks later: the core then asks the record for the
order and puts it back into the store (`StorePort.restore`: fenced, so that of two
reloads of the same order only one writes), then reads it from the store like any
other order. From there the command runs through the same handlers and checks as for
an order that never left. Its journal goes on from the record's last version.

Within one actor, concurrent commands naming the same order share one recall; across
processes the store's fence decides.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from orchestrator.domain.errors import Unavailable
from orchestrator.domain.order import Order
from orchestrator.servicepoint.observer import CoreObserver
from orchestrator.store.port import Read, RecordPort, StorePort

log = logging.getLogger(__name__)


class RecordUnavailable(Unavailable):
    """The order has left the store and the record cannot be read: ask again later."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id} has left the live store and the record cannot be read right "
            "now; retry with the same request_id"
        )


class OrderRecall:
    def __init__(
        self,
        store: StorePort,
        record: RecordPort | None,
        retention_ms: int,
        observer: CoreObserver,
    ) -> None:
        self._store = store
        self._record = record
        self._retention_ms = retention_ms
        self._observer = observer
        self._recalling: dict[str, asyncio.Task[None]] = {}

    async def recall(self, order_id: str) -> Read:
        """The order's snapshot as the store holds it once the record's copy is back
        (None if neither has it). Raises RecordUnavailable if the record cannot answer."""
        if self._record is None:
            return Read()
        task = self._recalling.get(order_id)
        if task is None:
            task = asyncio.create_task(self._put_back(self._record, order_id))
            self._recalling[order_id] = task
            task.add_done_callback(lambda _: self._recalling.pop(order_id, None))
        await asyncio.shield(task)
        reads = self._store.read_batch()
        read = reads.order(order_id)
        await reads.run()
        return read

    async def _put_back(self, record: RecordPort, order_id: str) -> None:
        try:
            recorded = await record.recorded_order(order_id)
        except Exception as error:  # the record's driver, pool or network: ask again later
            self._observer.recalled("record_unavailable")
            log.warning("cannot read order %s from the record: %s", order_id, error)
            raise RecordUnavailable(order_id) from error
        if recorded is None:
            self._observer.recalled("not_in_record")
            return
        order = Order.from_record(orjson.loads(recorded.snapshot))
        won = await self._store.restore(
            recorded,
            open_at=order.window_id if order.is_open else "",
            retention_ms=self._retention_ms,
            only_if_open=False,
        )
        self._observer.recalled("recalled" if won else "already_back")
        log.info(
            "order %s %s from the record at version %d (%s)",
            order_id,
            "put back into the store" if won else "was already back in the store",
            recorded.version,
            order.state,
            extra={"order_id": order_id},
        )
