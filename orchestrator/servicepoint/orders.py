"""The orders in a service-point core's care, and how their changes are staged.

Every order that still needs the actor is in `open` (loaded at start from the store);
closed ones stay a while in `recent`; an open one whose snapshot the store had lost waits
in `missing` until it is back from the record. A change is staged into the next group commit with
the payment events it raises, its journal entries and, for a request, its stored answer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import tzinfo

import orjson

from orchestrator.domain.calendar import local_day
from orchestrator.domain.errors import DomainError, ErrorCode, FailedPrecondition
from orchestrator.domain.order import Change, Order
from orchestrator.domain.records import decode_order, encode_order
from orchestrator.domain.states import AttemptState, RefundState
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.store.chain import Unlinked
from orchestrator.store.write_batch import WriteBatch

RECENT_ORDERS = 4096  # closed orders kept in memory after use


class Reloading(DomainError):
    """An open order the store had lost, not yet back from the record: ask again soon."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is being reloaded from the record; try again shortly")


class OrderBook:
    def __init__(self, commit: GroupCommit, zone: tzinfo, ttl_ms: int) -> None:
        self.open: dict[str, Order] = {}
        self.recent: OrderedDict[str, Order] = OrderedDict()
        self.missing: set[str] = set()  # open, but the store had lost its snapshot
        self.window_busy: dict[str, str] = {}  # window -> attempt id in flight
        self._commit = commit
        self._zone = zone
        self._ttl_ms = ttl_ms

    @property
    def batch(self) -> WriteBatch:
        """The writes of the next group commit."""
        return self._commit.batch

    def keep_open(self, order: Order) -> None:
        """A closed order with new work (a refund) comes back under the actor's care."""
        if order.order_id not in self.open:
            self.recent.pop(order.order_id, None)
            self.open[order.order_id] = order
            self.batch.mark_open(order.service_point_id, order.order_id, order.window_id)

    def find(self, order_id: str) -> Order | None:
        return self.open.get(order_id) or self.recent.get(order_id)

    def adopt(self, snapshot: bytes) -> Order:
        """An order read from Redis; memory wins if it already holds it."""
        order = Order.from_record(decode_order(snapshot))
        known = self.find(order.order_id)
        if known is not None:
            return known
        if order.order_id in self.missing:  # back in the store, not yet taken back
            raise Reloading(order.order_id)
        if order.is_open:  # cannot happen while this actor owns the service point
            raise FailedPrecondition(f"order {order.order_id} is open but was not loaded")
        self.recent[order.order_id] = order
        return order

    def stage(self, order: Order, changes: list[Change]) -> bytes:
        """Queue the order's new state for the next group commit, with the payment events
        it raises; track whether it is open."""
        snapshot = snapshot_of(order)
        sp = order.service_point_id
        batch = self.batch
        now = changes[-1].at
        batch.note_day(sp, local_day(now, self._zone).strftime("%Y%m%d"), order.order_id)
        for kind, refund_id in _payment_events(order, changes):
            batch.emit(sp, kind, now, refund_id, snapshot)
        batch.save_order(
            sp,
            order.order_id,
            order.version - len(changes),
            order.version,
            snapshot,
            [self._journal_entry(order, change) for change in changes],
            f"{order.order_id} {order.window_id} {order.version}\n".encode() + snapshot,
        )
        if not order.is_open and order.order_id in self.open:
            del self.open[order.order_id]
            self.recent[order.order_id] = order
            batch.mark_closed(sp, order.order_id)
        return snapshot

    def _journal_entry(self, order: Order, change: Change) -> Unlinked:
        """The change with the facts the chain's hash covers: the order, its amounts and
        (when created) fee lines, and the attempt or refund it concerns, as committed."""
        entry = change.to_record()
        entry["order"] = {
            "id": order.order_id,
            "business_no": order.business_no,
            "window": order.window_id,
            "state": order.state.value,
            "amount_fen": order.amount_fen,
            "refunded_fen": order.refunded_fen,
            "payer_sha256": hashlib.sha256(order.payer_name.encode()).hexdigest(),
        }
        if change.what == "created":
            entry["lines"] = [
                [line.fee_code, line.quantity, line.unit_price_fen, line.amount_fen]
                for line in order.lines
            ]
        if change.refund_id:
            refund = order.refund(change.refund_id)
            paid = order.attempt(refund.attempt_id)
            entry["refund"] = {
                "id": refund.refund_id,
                "attempt": refund.attempt_id,
                "channel": paid.channel.value,
                "amount_fen": refund.amount_fen,
                "state": RefundState.PENDING.value if change.approval else refund.state.value,
                "supervisor": refund.supervisor_id,
                "terminal": refund.terminal_id,
                "automatic": refund.automatic,
                "reason": refund.reason,
                "provider_refund_no": refund.provider_refund_no,
            }
        elif change.attempt_id:
            attempt = order.attempt(change.attempt_id)
            state = change.attempt_state or attempt.state
            entry["attempt"] = {
                "id": attempt.attempt_id,
                "channel": attempt.channel.value,
                "amount_fen": attempt.amount_fen,
                "state": state.value,
                "terminal": attempt.terminal_id,
                "provider_trade_no": attempt.provider_trade_no,
                "cash_received_fen": attempt.cash_received_fen,
                "change_fen": attempt.change_fen,
            }
        return Unlinked(entry, local_day(change.at, self._zone).date().isoformat())

    def save_response(
        self,
        order: Order,
        request_id: str,
        snapshot: bytes,
        *,
        attempt_id: str = "",
        refund_id: str = "",
    ) -> None:
        """What a replay of `request_id` answers: the order snapshot, or for a payment or
        refund still under way an empty one (the replay then waits for the outcome of
        that attempt or refund, like the original did)."""
        header = orjson.dumps(
            {"order_id": order.order_id, "attempt_id": attempt_id, "refund_id": refund_id}
        )
        self.batch.save_response(
            order.service_point_id, request_id, header + b"\n" + snapshot, self._ttl_ms
        )

    def trim_recent(self) -> None:
        while len(self.recent) > RECENT_ORDERS:
            order_id = next(iter(self.recent))
            if self._commit.unflushed(order_id):
                self.recent.move_to_end(order_id)
                break
            del self.recent[order_id]


def _payment_events(order: Order, changes: list[Change]) -> list[tuple[str, str]]:
    """What the business system must hear of: the order paid, a refund of it done."""
    events = []
    refunds_done = set()
    for change in changes:
        if change.what == "attempt" and change.attempt_state is AttemptState.SUCCEEDED:
            events.append(("ORDER_PAID", ""))
        elif change.what == "refund" and change.refund_id not in refunds_done:
            refund = order.refund(change.refund_id)
            if refund.state is RefundState.SUCCEEDED and not refund.automatic:
                refunds_done.add(change.refund_id)
                events.append(("ORDER_REFUNDED", change.refund_id))
    return events


def snapshot_of(order: Order) -> bytes:
    return encode_order(order.to_record())
