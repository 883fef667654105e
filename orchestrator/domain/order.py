"""The order aggregate: what the payer owes for one business case and its attempts.

Every mutator checks the transition tables in states.py, bumps the version by one and
returns the Change to journal. Time is passed in as milliseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.errors import FailedPrecondition, InvalidArgument
from orchestrator.domain.states import (
    FINAL_ATTEMPT_STATES,
    AttemptEvent,
    AttemptState,
    Channel,
    OrderEvent,
    OrderState,
    next_attempt_state,
    next_order_state,
)

Record = dict[str, Any]


@dataclass(slots=True)
class Attempt:
    attempt_id: str  # also the out_trade_no at the provider
    channel: Channel
    state: AttemptState
    amount_fen: int
    terminal_id: str
    request_id: str
    created_at: int
    finished_at: int | None = None
    provider_trade_no: str = ""
    failure_reason: str = ""
    auth_code_masked: str = ""
    cash_received_fen: int = 0
    change_fen: int = 0

    @property
    def final(self) -> bool:
        return self.state in FINAL_ATTEMPT_STATES

    def to_record(self) -> Record:
        return {
            "attempt_id": self.attempt_id,
            "channel": self.channel.value,
            "state": self.state.value,
            "amount_fen": self.amount_fen,
            "terminal_id": self.terminal_id,
            "request_id": self.request_id,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "provider_trade_no": self.provider_trade_no,
            "failure_reason": self.failure_reason,
            "auth_code_masked": self.auth_code_masked,
            "cash_received_fen": self.cash_received_fen,
            "change_fen": self.change_fen,
        }

    @classmethod
    def from_record(cls, r: Record) -> Attempt:
        return cls(
            attempt_id=r["attempt_id"],
            channel=Channel(r["channel"]),
            state=AttemptState(r["state"]),
            amount_fen=r["amount_fen"],
            terminal_id=r["terminal_id"],
            request_id=r["request_id"],
            created_at=r["created_at"],
            finished_at=r["finished_at"],
            provider_trade_no=r["provider_trade_no"],
            failure_reason=r["failure_reason"],
            auth_code_masked=r["auth_code_masked"],
            cash_received_fen=r["cash_received_fen"],
            change_fen=r["change_fen"],
        )


@dataclass(frozen=True, slots=True)
class Change:
    """One journal entry: what happened to the order at `version`."""

    version: int
    at: int
    what: str
    order_state: OrderState
    attempt_id: str = ""
    attempt_state: AttemptState | None = None
    detail: str = ""

    def to_record(self) -> Record:
        record: Record = {
            "v": self.version,
            "at": self.at,
            "what": self.what,
            "order_state": self.order_state.value,
        }
        if self.attempt_id:
            record["attempt_id"] = self.attempt_id
        if self.attempt_state is not None:
            record["attempt_state"] = self.attempt_state.value
        if self.detail:
            record["detail"] = self.detail
        return record


@dataclass(slots=True)
class Order:
    order_id: str
    business_no: str
    service_point_id: str
    window_id: str
    payer_name: str
    lines: tuple[PricedLine, ...]
    amount_fen: int
    catalog_version: str
    state: OrderState
    created_at: int
    expires_at: int
    version: int = 0
    paid_at: int | None = None
    paid_by: str = ""
    cancel_reason: str = ""
    refunded_fen: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        order_id: str,
        business_no: str,
        service_point_id: str,
        window_id: str,
        payer_name: str,
        lines: tuple[PricedLine, ...],
        catalog_version: str,
        now: int,
        expires_at: int,
    ) -> tuple[Order, Change]:
        if not lines:
            raise InvalidArgument("an order needs at least one priced line")
        order = cls(
            order_id=order_id,
            business_no=business_no,
            service_point_id=service_point_id,
            window_id=window_id,
            payer_name=payer_name,
            lines=lines,
            amount_fen=sum(line.amount_fen for line in lines),
            catalog_version=catalog_version,
            state=OrderState.AWAITING_PAYMENT,
            created_at=now,
            expires_at=expires_at,
        )
        return order, order._changed(now, "created")

    # ---- queries -------------------------------------------------------------

    def attempt(self, attempt_id: str) -> Attempt:
        for attempt in self.attempts:
            if attempt.attempt_id == attempt_id:
                return attempt
        raise FailedPrecondition(f"order {self.order_id} has no attempt {attempt_id}")

    def in_flight(self) -> Attempt | None:
        for attempt in self.attempts:
            if not attempt.final:
                return attempt
        return None

    def next_attempt_id(self) -> str:
        return f"{self.order_id}-{len(self.attempts) + 1}"

    @property
    def is_open(self) -> bool:
        """Still needs the service point's attention (payable, or an attempt not final)."""
        return self.state in (OrderState.AWAITING_PAYMENT, OrderState.PAYING) or (
            self.in_flight() is not None
        )

    def same_lines(self, lines: tuple[PricedLine, ...]) -> bool:
        mine = sorted((line.fee_code, line.quantity) for line in self.lines)
        theirs = sorted((line.fee_code, line.quantity) for line in lines)
        return mine == theirs

    # ---- commands ------------------------------------------------------------

    def start_attempt(
        self,
        *,
        attempt_id: str,
        channel: Channel,
        terminal_id: str,
        request_id: str,
        now: int,
        auth_code_masked: str = "",
        cash_received_fen: int = 0,
    ) -> Change:
        if self.state is not OrderState.AWAITING_PAYMENT:
            raise FailedPrecondition(f"order {self.order_id} is {self.state}, not payable")
        busy = self.in_flight()
        if busy is not None:
            raise FailedPrecondition(
                f"order {self.order_id} already has attempt {busy.attempt_id} in flight"
            )
        if now >= self.expires_at:
            raise FailedPrecondition(f"order {self.order_id} expired and can no longer be paid")
        if channel is Channel.CASH and cash_received_fen < self.amount_fen:
            raise InvalidArgument(
                f"cash received {cash_received_fen} fen is less than the {self.amount_fen} fen due"
            )
        self.state = next_order_state(self.state, OrderEvent.ATTEMPT_STARTED)
        self.attempts.append(
            Attempt(
                attempt_id=attempt_id,
                channel=channel,
                state=AttemptState.SUBMITTED,
                amount_fen=self.amount_fen,
                terminal_id=terminal_id,
                request_id=request_id,
                created_at=now,
                auth_code_masked=auth_code_masked,
                cash_received_fen=cash_received_fen if channel is Channel.CASH else 0,
                change_fen=cash_received_fen - self.amount_fen if channel is Channel.CASH else 0,
            )
        )
        return self._changed(now, "attempt", attempt_id, AttemptState.SUBMITTED, channel.value)

    def record_attempt(
        self,
        attempt_id: str,
        event: AttemptEvent,
        now: int,
        *,
        trade_no: str = "",
        reason: str = "",
    ) -> Change:
        """Apply a provider outcome (or engine decision) to an attempt, then to the order."""
        attempt = self.attempt(attempt_id)
        new_state = next_attempt_state(attempt.state, event)
        order_event: OrderEvent | None = None
        if new_state is AttemptState.SUCCEEDED:
            order_event = OrderEvent.ATTEMPT_SUCCEEDED
        elif new_state in (AttemptState.FAILED, AttemptState.REVERSED):
            order_event = OrderEvent.ATTEMPT_ENDED_UNPAID
        new_order_state = next_order_state(self.state, order_event) if order_event else self.state
        attempt.state = new_state
        if trade_no:
            attempt.provider_trade_no = trade_no
        if reason:
            attempt.failure_reason = reason
        if attempt.final and attempt.finished_at is None:
            attempt.finished_at = now
        self.state = new_order_state
        if order_event is OrderEvent.ATTEMPT_SUCCEEDED:
            self.paid_at = now
            self.paid_by = attempt_id
        return self._changed(now, "attempt", attempt_id, new_state, reason or event.value)

    def cancel(self, reason: str, now: int) -> Change:
        self.state = next_order_state(self.state, OrderEvent.CANCEL)
        self.cancel_reason = reason
        return self._changed(now, "cancelled", detail=reason)

    def expire(self, now: int) -> Change:
        self.state = next_order_state(self.state, OrderEvent.EXPIRE)
        return self._changed(now, "expired")

    def _changed(
        self,
        now: int,
        what: str,
        attempt_id: str = "",
        attempt_state: AttemptState | None = None,
        detail: str = "",
    ) -> Change:
        self.version += 1
        return Change(self.version, now, what, self.state, attempt_id, attempt_state, detail)

    # ---- records ---------------------------------------------------------------

    def to_record(self) -> Record:
        return {
            "order_id": self.order_id,
            "business_no": self.business_no,
            "service_point_id": self.service_point_id,
            "window_id": self.window_id,
            "payer_name": self.payer_name,
            "lines": [
                {
                    "fee_code": line.fee_code,
                    "name": line.name,
                    "unit": line.unit,
                    "category": line.category.value,
                    "quantity": line.quantity,
                    "unit_price_fen": line.unit_price_fen,
                    "amount_fen": line.amount_fen,
                }
                for line in self.lines
            ],
            "amount_fen": self.amount_fen,
            "catalog_version": self.catalog_version,
            "state": self.state.value,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "version": self.version,
            "paid_at": self.paid_at,
            "paid_by": self.paid_by,
            "cancel_reason": self.cancel_reason,
            "refunded_fen": self.refunded_fen,
            "attempts": [attempt.to_record() for attempt in self.attempts],
        }

    @classmethod
    def from_record(cls, r: Record) -> Order:
        return cls(
            order_id=r["order_id"],
            business_no=r["business_no"],
            service_point_id=r["service_point_id"],
            window_id=r["window_id"],
            payer_name=r["payer_name"],
            lines=tuple(
                PricedLine(
                    fee_code=line["fee_code"],
                    name=line["name"],
                    unit=line["unit"],
                    category=FeeCategory(line["category"]),
                    quantity=line["quantity"],
                    unit_price_fen=line["unit_price_fen"],
                    amount_fen=line["amount_fen"],
                )
                for line in r["lines"]
            ),
            amount_fen=r["amount_fen"],
            catalog_version=r["catalog_version"],
            state=OrderState(r["state"]),
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            version=r["version"],
            paid_at=r["paid_at"],
            paid_by=r["paid_by"],
            cancel_reason=r["cancel_reason"],
            refunded_fen=r["refunded_fen"],
            attempts=[Attempt.from_record(a) for a in r["attempts"]],
        )


def invariant_violations(order: Order) -> list[str]:
    """The invariants of DOMAIN.md §4 that one order must satisfy on its own."""
    problems = []
    if order.amount_fen != sum(line.amount_fen for line in order.lines):
        problems.append("amount differs from the sum of its lines")
    for line in order.lines:
        if line.amount_fen != line.unit_price_fen * line.quantity:
            problems.append(f"line {line.fee_code} amount is not unit price x quantity")
    in_flight = [a for a in order.attempts if not a.final]
    if len(in_flight) > 1:
        problems.append("more than one attempt in flight")
    if bool(in_flight) != (order.state is OrderState.PAYING):
        problems.append(f"state {order.state} with {len(in_flight)} attempts in flight")
    succeeded = [a for a in order.attempts if a.state is AttemptState.SUCCEEDED]
    if len(succeeded) > 1:
        problems.append("paid by more than one attempt")
    is_paid = order.state in (
        OrderState.PAID,
        OrderState.PARTIALLY_REFUNDED,
        OrderState.REFUNDED,
    )
    if is_paid != bool(succeeded):
        problems.append(f"state {order.state} with {len(succeeded)} succeeded attempts")
    if succeeded and order.paid_by != succeeded[0].attempt_id:
        problems.append("paid_by does not name the succeeded attempt")
    if not 0 <= order.refunded_fen <= order.amount_fen:
        problems.append("refunded more than was paid")
    return problems
