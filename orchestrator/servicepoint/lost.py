"""Open orders the store had lost: the open set names them, their snapshot is gone.

Never skipped: each is an alarm (an ERROR in the log, `windowpay_live_orders_missing`
while it lasts) and a request to put it back from the record, which the drainer answers
(orchestrator/record/reload.py). Meanwhile commands naming it answer UNAVAILABLE; once
it is in the store again it is taken back under the actor's care and its provider work
resumed, from the version the record had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from orchestrator.domain import ids
from orchestrator.domain.order import Order
from orchestrator.domain.records import decode_order
from orchestrator.providers.engine import Clock
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.orders import OrderBook
from orchestrator.store.port import StorePort

log = logging.getLogger(__name__)
POLL_S = 1.0  # how often a missing order is looked for again


class LostOrders:
    def __init__(
        self,
        store: StorePort,
        book: OrderBook,
        commit: GroupCommit,
        clock: Clock,
        resume: Callable[[Order], int],
    ) -> None:
        self._store = store
        self._book = book
        self._commit = commit
        self._clock = clock
        self._resume = resume

    async def report(self, sp: str, order_ids: list[str]) -> None:
        self._book.missing.update(order_ids)
        for order_id in order_ids:
            log.error(
                "order %s is open at %s but its snapshot is missing from Redis: asked for "
                "it to be reloaded from the record; commands naming it answer UNAVAILABLE "
                "until then",
                order_id,
                sp,
                extra={"order_id": order_id},
            )
        await self._store.ask_reload(sp, order_ids)

    async def take_back(self) -> None:
        """Until none is missing: take back each order found in the store again."""
        while self._book.missing:
            await self._clock.sleep(POLL_S)
            reads = self._store.read_batch()
            found = [reads.order(order_id) for order_id in self._book.missing]
            try:
                await reads.run()
            except Exception as error:  # the store is away: look again at the next turn
                log.warning("cannot read the missing orders yet: %s", error)
                continue
            closed = False
            for read in found:
                if read.value is not None:
                    closed |= self._back(Order.from_record(decode_order(read.value)))
            if closed:
                await self._commit.durable()

    def _back(self, order: Order) -> bool:
        """Take the order back; True if it is closed (its open-set entry then goes)."""
        self._book.missing.discard(order.order_id)
        log.warning(
            "order %s is back from the record at version %d (%s); whatever happened to it "
            "after that version is not known here",
            order.order_id,
            order.version,
            order.state,
            extra={"order_id": order.order_id},
        )
        if order.is_open:
            self._book.open[order.order_id] = order
            self._resume(order)
            return False
        self._book.recent[order.order_id] = order
        self._book.batch.mark_closed(order.service_point_id, order.order_id)
        return True

    def counts(self, service_points: Iterable[str]) -> dict[str, int]:
        """Per service point: the orders still missing."""
        counts = dict.fromkeys(service_points, 0)
        for order_id in self._book.missing:
            counts[ids.service_point_of(order_id)] += 1
        return counts
