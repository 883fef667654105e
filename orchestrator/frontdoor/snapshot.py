"""An order snapshot as the front door reads it: decoded once, typed where it decides.

Snapshots arrive as the JSON bytes the actor committed (from Redis, the record or the
event hub). The front door decides on a few fields (is the order watched, is it newer
than what a stream already sent, is the payment or refund it waits for final) and turns
the whole record into a message; both read this one decoded view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.domain.commands import Accepted
from orchestrator.domain.records import OrderRecord, decode_order
from orchestrator.domain.states import (
    FINAL_ATTEMPT_STATES,
    AttemptState,
    OrderState,
    RefundState,
)

WATCHED_STATES = frozenset({OrderState.AWAITING_PAYMENT, OrderState.PAYING})
"""Orders a window's terminal is shown when it starts watching."""


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: str
    version: int
    state: OrderState
    attempt_states: Mapping[str, AttemptState]
    refund_states: Mapping[str, RefundState]
    record: OrderRecord  # the whole record, for the message

    @classmethod
    def decode(cls, snapshot: bytes) -> OrderView:
        """Raises MalformedRecord if the snapshot lacks a field (domain/records.py)."""
        record = decode_order(snapshot)
        return cls(
            order_id=record["order_id"],
            version=record["version"],
            state=OrderState(record["state"]),
            attempt_states={a["attempt_id"]: AttemptState(a["state"]) for a in record["attempts"]},
            refund_states={r["refund_id"]: RefundState(r["state"]) for r in record["refunds"]},
            record=record,
        )

    @property
    def created_by(self) -> str:
        """The business principal whose CreateOrder made it; "" for an order made before
        orders recorded it."""
        return self.record.get("created_by", "")

    @property
    def watched(self) -> bool:
        return self.state in WATCHED_STATES

    def work_done(self, accepted: Accepted) -> bool:
        """Whether the payment attempt or refund that `accepted` started is final; for a
        QR payment, whether its code is made (the payer scans it after Pay answered)."""
        if accepted.refund_id:
            state = self.refund_states.get(accepted.refund_id)
            return state is not None and state is not RefundState.PENDING
        if self.attempt_states.get(accepted.attempt_id) in FINAL_ATTEMPT_STATES:
            return True
        return any(
            a["attempt_id"] == accepted.attempt_id and a.get("qr_code_url")
            for a in self.record["attempts"]
        )
