"""The order aggregate: what the payer owes for one business case and its attempts.

Every mutator checks the transition tables in states.py, bumps the version by one and
returns the Change to journal. Time is passed in as milliseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.errors import FailedPrecondition, InvalidArgument
from orchestrator.domain.ids import compact
from orchestrator.domain.states import (
    FINAL_ATTEMPT_STATES,
    AttemptEvent,
    AttemptState,
    Channel,
    OrderEvent,
    OrderState,
    PayMode,
    RefundState,
    needs_attention,
    next_attempt_state,
    next_order_state,
)

if TYPE_CHECKING:  # the records' codec (orjson) stays out of the pure domain at run time
    from orchestrator.domain.records import (
        AttemptRecord,
        JournalEntry,
        OrderRecord,
        RefundRecord,
    )


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
    follow_up: bool = False  # unpaid, but the provider's last word is still awaited
    mode: PayMode = PayMode.PAYER_PRESENTS_CODE
    qr_code_url: str = ""  # PAYER_SCANS_QR: the code shown to the payer
    qr_expires_at: int | None = None  # PAYER_SCANS_QR: when windowpay closes the trade

    @property
    def scans_qr(self) -> bool:
        return self.mode is PayMode.PAYER_SCANS_QR

    @property
    def final(self) -> bool:
        return self.state in FINAL_ATTEMPT_STATES

    def to_record(self) -> AttemptRecord:
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
            "follow_up": self.follow_up,
            "mode": self.mode.value,
            "qr_code_url": self.qr_code_url,
            "qr_expires_at": self.qr_expires_at,
        }

    @classmethod
    def from_record(cls, r: AttemptRecord) -> Attempt:
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
            follow_up=r["follow_up"],
            # Records written before QR payments existed carry no mode.
            mode=PayMode(r.get("mode", PayMode.PAYER_PRESENTS_CODE.value)),
            qr_code_url=r.get("qr_code_url", ""),
            qr_expires_at=r.get("qr_expires_at"),
        )


@dataclass(slots=True)
class Refund:
    """Money given back: part of the order's payment, or (automatic) a late success."""

    refund_id: str  # also the out_refund_no at the provider
    attempt_id: str  # the attempt whose money goes back
    amount_fen: int
    state: RefundState
    reason: str
    supervisor_id: str
    terminal_id: str
    request_id: str
    automatic: bool
    created_at: int
    finished_at: int | None = None
    provider_refund_no: str = ""
    failure_reason: str = ""

    def to_record(self) -> RefundRecord:
        return {
            "refund_id": self.refund_id,
            "attempt_id": self.attempt_id,
            "amount_fen": self.amount_fen,
            "state": self.state.value,
            "reason": self.reason,
            "supervisor_id": self.supervisor_id,
            "terminal_id": self.terminal_id,
            "request_id": self.request_id,
            "automatic": self.automatic,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "provider_refund_no": self.provider_refund_no,
            "failure_reason": self.failure_reason,
        }

    @classmethod
    def from_record(cls, r: RefundRecord) -> Refund:
        return cls(
            refund_id=r["refund_id"],
            attempt_id=r["attempt_id"],
            amount_fen=r["amount_fen"],
            state=RefundState(r["state"]),
            reason=r["reason"],
            supervisor_id=r["supervisor_id"],
            terminal_id=r["terminal_id"],
            request_id=r["request_id"],
            automatic=r["automatic"],
            created_at=r["created_at"],
            finished_at=r["finished_at"],
            provider_refund_no=r["provider_refund_no"],
            failure_reason=r["failure_reason"],
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
    refund_id: str = ""
    approval: tuple[str, str, int] | None = None  # a refund's supervisor, terminal, amount
    by: str = ""  # who asked for it, from the caller's identity (a cancel's principal)

    def to_record(self) -> JournalEntry:
        record: JournalEntry = {
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
        if self.refund_id:
            record["refund_id"] = self.refund_id
        if self.approval is not None:
            supervisor, terminal, amount = self.approval
            record["supervisor_id"] = supervisor
            record["terminal_id"] = terminal
            record["amount_fen"] = amount
        if self.by:
            record["by"] = self.by
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
    refunds: list[Refund] = field(default_factory=list)
    # The business principal whose CreateOrder made it ("": made before orders recorded
    # it, or without a principal): only that one may read or cancel it.
    created_by: str = ""
    # The office and site of its service point when it was made (domain/places.py; "":
    # made before offices existed, or in a deployment of one implicit office).
    office_id: str = ""
    site_id: str = ""

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
        created_by: str = "",
        office_id: str = "",
        site_id: str = "",
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
            created_by=created_by,
            office_id=office_id,
            site_id=site_id,
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

    def next_attempt_id(self, nonce: str) -> str:
        """The next attempt's id, which is also its out_trade_no / orderId at the
        provider: letters and digits only (what every channel accepts), at most 29
        characters, and never reused even if the store lost its last writes, thanks to
        the caller's random `nonce`."""
        return f"{compact(self.order_id)}P{len(self.attempts) + 1}{_checked_nonce(nonce)}"

    def refund(self, refund_id: str) -> Refund:
        for refund in self.refunds:
            if refund.refund_id == refund_id:
                return refund
        raise FailedPrecondition(f"order {self.order_id} has no refund {refund_id}")

    def automatic_refunds(self, attempt_id: str) -> list[Refund]:
        """The tries to give back a late success of `attempt_id`, oldest first."""
        return [r for r in self.refunds if r.automatic and r.attempt_id == attempt_id]

    def pending_refunds(self) -> list[Refund]:
        return [r for r in self.refunds if r.state is RefundState.PENDING]

    @property
    def refundable_fen(self) -> int:
        """What may still be refunded of the order's payment (pending refunds count)."""
        if self.state not in (OrderState.PAID, OrderState.PARTIALLY_REFUNDED):
            return 0
        pending = sum(r.amount_fen for r in self.pending_refunds() if not r.automatic)
        return self.amount_fen - self.refunded_fen - pending

    @property
    def is_open(self) -> bool:
        """Still needs the service point's attention: payable, an attempt not final or
        under follow-up, or a refund not yet through."""
        return needs_attention(
            self.state,
            ((a.state, a.follow_up) for a in self.attempts),
            (r.state for r in self.refunds),
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
        mode: PayMode = PayMode.PAYER_PRESENTS_CODE,
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
        if channel is Channel.CASH and mode is PayMode.PAYER_SCANS_QR:
            raise InvalidArgument("cash is paid at the counter, not by a QR code")
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
                mode=mode,
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
        qr_code_url: str = "",
        qr_expires_at: int | None = None,
    ) -> Change:
        """Apply a provider outcome (or engine decision) to an attempt, then to the order."""
        attempt = self.attempt(attempt_id)
        new_state = next_attempt_state(attempt.state, event)
        if event is AttemptEvent.QR_CODE_READY and not (
            attempt.scans_qr and qr_code_url and qr_expires_at
        ):
            raise FailedPrecondition(f"attempt {attempt_id}: a QR code needs its URL and expiry")
        if event is AttemptEvent.LATE_SUCCESS:
            return self._late_success(attempt, now, trade_no, reason)
        if event is AttemptEvent.LATE_SUCCESS_REFUNDED and not any(
            r.automatic and r.attempt_id == attempt_id and r.state is RefundState.SUCCEEDED
            for r in self.refunds
        ):
            raise FailedPrecondition(f"attempt {attempt_id} has no completed late-success refund")
        order_event: OrderEvent | None = None
        if not attempt.final and new_state is AttemptState.SUCCEEDED:
            order_event = OrderEvent.ATTEMPT_SUCCEEDED
        elif not attempt.final and new_state in (AttemptState.FAILED, AttemptState.REVERSED):
            order_event = OrderEvent.ATTEMPT_ENDED_UNPAID
        new_order_state = next_order_state(self.state, order_event) if order_event else self.state
        attempt.state = new_state
        if trade_no:
            attempt.provider_trade_no = trade_no
        if new_state is AttemptState.SUCCEEDED:
            attempt.failure_reason = ""  # an earlier "no answer" is no failure after all
        elif reason:
            attempt.failure_reason = reason
        if attempt.final and attempt.finished_at is None:
            attempt.finished_at = now
        if event is AttemptEvent.QR_CODE_READY:
            attempt.qr_code_url, attempt.qr_expires_at = qr_code_url, qr_expires_at
        # A closed QR trade is watched a while longer: the payer's scan may race the close.
        attempt.follow_up = event is AttemptEvent.REVERSAL_ABANDONED or (
            event is AttemptEvent.REVERSED and attempt.scans_qr
        )
        self.state = new_order_state
        if order_event is OrderEvent.ATTEMPT_SUCCEEDED:
            self.paid_at = now
            self.paid_by = attempt_id
        return self._changed(now, "attempt", attempt_id, new_state, reason or event.value)

    def _late_success(self, attempt: Attempt, now: int, trade_no: str, reason: str) -> Change:
        """An attempt that ended unpaid turned out paid: its money goes back (invariant 3)."""
        earlier = self.automatic_refunds(attempt.attempt_id)
        if any(r.state is not RefundState.FAILED for r in earlier):
            raise FailedPrecondition(f"attempt {attempt.attempt_id} is already being refunded")
        attempt.follow_up = False
        if trade_no:
            attempt.provider_trade_no = trade_no
        # The k-th try to give this attempt's money back: after a lost write it is found
        # again as the same refund of the same money, so the same number is right; a try
        # after a refused one gets a new number.
        refund_id = f"{attempt.attempt_id}L{len(earlier) + 1}"
        self.refunds.append(
            Refund(
                refund_id=refund_id,
                attempt_id=attempt.attempt_id,
                amount_fen=attempt.amount_fen,
                state=RefundState.PENDING,
                reason=reason or "late success",
                supervisor_id="",
                terminal_id="",
                request_id="",
                automatic=True,
                created_at=now,
            )
        )
        return self._changed(
            now, "late_success", attempt.attempt_id, attempt.state, reason, refund_id
        )

    def request_refund(
        self,
        *,
        amount_fen: int,
        reason: str,
        supervisor_id: str,
        terminal_id: str,
        request_id: str,
        now: int,
        nonce: str,
    ) -> Change:
        """Give back part or all of the order's payment; the money is reserved at once so
        that refunds under way together never exceed what was paid. The refund's id is
        its out_refund_no: the random `nonce` keeps it unique even after a lost write."""
        if self.state not in (OrderState.PAID, OrderState.PARTIALLY_REFUNDED):
            raise FailedPrecondition(f"order {self.order_id} is {self.state}; nothing to refund")
        if not 0 < amount_fen <= self.refundable_fen:
            raise FailedPrecondition(
                f"refund of {amount_fen} fen refused: {self.refundable_fen} fen of order "
                f"{self.order_id} can still be refunded"
            )
        refund_id = f"{self.paid_by}R{len(self.refunds) + 1}{_checked_nonce(nonce)}"
        self.refunds.append(
            Refund(
                refund_id=refund_id,
                attempt_id=self.paid_by,
                amount_fen=amount_fen,
                state=RefundState.PENDING,
                reason=reason,
                supervisor_id=supervisor_id,
                terminal_id=terminal_id,
                request_id=request_id,
                automatic=False,
                created_at=now,
            )
        )
        change = self._changed(now, "refund", self.paid_by, detail=reason, refund_id=refund_id)
        return replace(change, approval=(supervisor_id, terminal_id, amount_fen))

    def record_refund(
        self,
        refund_id: str,
        *,
        succeeded: bool,
        now: int,
        refund_no: str = "",
        reason: str = "",
    ) -> list[Change]:
        refund = self.refund(refund_id)
        if refund.state is not RefundState.PENDING:
            raise FailedPrecondition(f"refund {refund_id} is already {refund.state}")
        refund.state = RefundState.SUCCEEDED if succeeded else RefundState.FAILED
        refund.finished_at = now
        refund.provider_refund_no = refund_no
        refund.failure_reason = "" if succeeded else reason
        changes = [
            self._changed(
                now, "refund", refund.attempt_id, detail=reason or refund.state.value,
                refund_id=refund_id,
            )
        ]  # fmt: skip
        if succeeded and refund.automatic:
            changes.append(
                self.record_attempt(refund.attempt_id, AttemptEvent.LATE_SUCCESS_REFUNDED, now)
            )
        elif succeeded:
            self.refunded_fen += refund.amount_fen
            event = (
                OrderEvent.REFUND_REST
                if self.refunded_fen == self.amount_fen
                else OrderEvent.REFUND_PART
            )
            self.state = next_order_state(self.state, event)
        return changes

    def cancel(self, reason: str, now: int, by: str = "") -> Change:
        """`by`: who cancels, as the caller's identity says (never the free-text reason)."""
        self.state = next_order_state(self.state, OrderEvent.CANCEL)
        self.cancel_reason = reason
        return replace(self._changed(now, "cancelled", detail=reason), by=by)

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
        refund_id: str = "",
    ) -> Change:
        self.version += 1
        return Change(
            self.version, now, what, self.state, attempt_id, attempt_state, detail, refund_id
        )

    # ---- records ---------------------------------------------------------------

    def to_record(self) -> OrderRecord:
        record: OrderRecord = {
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
            "refunds": [refund.to_record() for refund in self.refunds],
            "created_by": self.created_by,
        }
        # Only when there is one: an order of the implicit office is written as before.
        if self.office_id:
            record["office_id"] = self.office_id
        if self.site_id:
            record["site_id"] = self.site_id
        return record

    @classmethod
    def from_record(cls, r: OrderRecord) -> Order:
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
            refunds=[Refund.from_record(f) for f in r["refunds"]],
            created_by=r.get("created_by", ""),
            office_id=r.get("office_id", ""),
            site_id=r.get("site_id", ""),
        )


def invariant_violations(order: Order) -> list[str]:
    """The invariants of docs/DOMAIN.md §4 that one order must satisfy on its own."""
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
    own = [r for r in order.refunds if not r.automatic]
    if order.refunded_fen != sum(r.amount_fen for r in own if r.state is RefundState.SUCCEEDED):
        problems.append("refunded amount differs from the refunds that went through")
    if sum(r.amount_fen for r in own if r.state is not RefundState.FAILED) > order.amount_fen:
        problems.append("refunds under way or done exceed the payment")
    if any(r.attempt_id != order.paid_by for r in own):
        problems.append("a refund of the payment names another attempt")
    expected_state = {0: OrderState.PAID, order.amount_fen: OrderState.REFUNDED}.get(
        order.refunded_fen, OrderState.PARTIALLY_REFUNDED
    )
    if is_paid and order.state is not expected_state:
        problems.append(f"state {order.state} after {order.refunded_fen} fen refunded")
    for refund in order.refunds:
        if refund.automatic and order.attempt(refund.attempt_id).state is AttemptState.SUCCEEDED:
            problems.append("the paying attempt is refunded as a late success")
    for attempt in order.attempts:
        if attempt.state is AttemptState.LATE_SUCCESS_REFUNDED and not any(
            r.automatic and r.attempt_id == attempt.attempt_id and r.state is RefundState.SUCCEEDED
            for r in order.refunds
        ):
            problems.append(f"attempt {attempt.attempt_id} marked refunded without a refund")
    return problems


NONCE_LENGTH = 6


def _checked_nonce(nonce: str) -> str:
    if len(nonce) != NONCE_LENGTH or not (nonce.isascii() and nonce.isalnum()):
        raise ValueError(f"nonce must be {NONCE_LENGTH} letters or digits, got {nonce!r}")
    return nonce
