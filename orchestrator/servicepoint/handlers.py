"""The decide step of the service-point core: one handler per command.

Each runs synchronously against the orders in memory (no await between reading an
order and changing it: this is what serialises a window) and stages its writes; the
core commits them, then releases the answers and starts the provider work they name.
"""

from __future__ import annotations

import base64
import logging
import secrets

import orjson

from orchestrator.config import Config
from orchestrator.domain.auth_codes import mask_auth_code
from orchestrator.domain.calendar import expiry_after
from orchestrator.domain.commands import (
    Accepted,
    CancelOrder,
    Command,
    CreateOrder,
    Done,
    Pay,
    RefundOrder,
    Rejected,
    Result,
    SettleLateSuccess,
)
from orchestrator.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
)
from orchestrator.domain.order import NONCE_LENGTH, Order
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState, RefundState
from orchestrator.providers.engine import Clock
from orchestrator.servicepoint.job import Job, claimed_now, value_of
from orchestrator.servicepoint.observer import CoreObserver
from orchestrator.servicepoint.orders import OrderBook, Reloading, snapshot_of
from orchestrator.store import keys
from orchestrator.store.port import ReadBatchPort

log = logging.getLogger(__name__)


class CommandHandlers:
    def __init__(
        self, config: Config, book: OrderBook, clock: Clock, observer: CoreObserver
    ) -> None:
        self._config = config
        self._settings = config.settings
        self._book = book
        self._clock = clock
        self._observer = observer

    def decide(self, job: Job, reads: ReadBatchPort) -> Result:
        command = job.command
        holder = value_of(job.claim)
        if holder is not None and holder.decode() != job.fingerprint:
            self.release_claims(job, reads)
            return self.conflict(command)
        stored = value_of(job.response)
        if stored is not None:
            self.idempotency(command, "replayed")
            return self.replay(job, stored, reads)
        if isinstance(command, CreateOrder):
            return self.create(job, command, reads)
        if (snapshot := value_of(job.order)) is not None:
            self._book.adopt(snapshot)
        order = self._book.find(command.order_id)
        if order is None:
            if command.order_id in self._book.missing:
                raise Reloading(command.order_id)
            raise NotFound(f"order {command.order_id} not found")
        if isinstance(command, Pay):
            return self.pay(job, command, order, reads)
        if isinstance(command, RefundOrder):
            return self.refund(job, command, order)
        if isinstance(command, SettleLateSuccess):
            return self.settle_late_success(job, command, order)
        return self.cancel(job, command, order)

    def create(self, job: Job, command: CreateOrder, reads: ReadBatchPort) -> Result:
        existing_id = value_of(job.business)
        if existing_id is not None:
            held = existing_id.decode()
            if held in self._book.missing:  # the case's order may still be payable
                raise Reloading(held)
            existing = self._book.find(held.removesuffix(keys.RECORDED))
            if existing is None and held.endswith(keys.RECORDED):  # left Redis, paid
                raise FailedPrecondition(
                    f"business case {command.business_no} already has order "
                    f"{held.removesuffix(keys.RECORDED)} (in the record)"
                )
            if existing is not None and existing.state not in (
                OrderState.CANCELLED,
                OrderState.EXPIRED,
            ):
                if existing.created_by != command.created_by and existing.created_by:
                    raise FailedPrecondition(
                        f"business case {command.business_no} belongs to another business system"
                    )
                if existing.window_id == command.window_id and existing.same_lines(job.lines):
                    snapshot = snapshot_of(existing)
                    self._book.save_response(existing, command.request_id, snapshot)
                    return Done(snapshot)
                raise FailedPrecondition(
                    f"business case {command.business_no} already has order "
                    f"{existing.order_id} ({existing.state}) with other fee items or window"
                )
            # The case's earlier order was withdrawn or expired (or never committed).
            self._book.batch.set(keys.business_case(command.business_no), job.candidate_id)
        now = self._clock.now_ms()
        order, change = Order.create(
            order_id=job.candidate_id,
            business_no=command.business_no,
            service_point_id=job.sp,
            window_id=command.window_id,
            payer_name=command.payer_name,
            lines=job.lines,
            catalog_version=job.catalog_version,
            now=now,
            expires_at=expiry_after(now, self._settings.business_day_end, self._settings.zone),
            created_by=command.created_by,
        )
        self._book.open[order.order_id] = order
        snapshot = self._book.stage(order, [change])
        self._book.batch.mark_open(job.sp, order.order_id, order.window_id)
        self._book.save_response(order, command.request_id, snapshot)
        return Done(snapshot)

    def pay(self, job: Job, command: Pay, order: Order, reads: ReadBatchPort) -> Result:
        if order.window_id != command.terminal_window_id:
            raise PermissionDenied(
                f"terminal {command.terminal_id} is bound to window "
                f"{command.terminal_window_id}, not to {order.window_id} of order {order.order_id}"
            )
        if value_of(job.code) not in (None, command.request_id.encode()):
            raise FailedPrecondition("this auth code was already used; ask the payer to refresh it")
        now = self._clock.now_ms()
        if order.state is OrderState.AWAITING_PAYMENT and now >= order.expires_at:
            self._book.stage(order, [order.expire(now)])
            raise FailedPrecondition(f"order {order.order_id} expired and can no longer be paid")
        busy = self._book.window_busy.get(order.window_id)
        if busy is not None:
            raise FailedPrecondition(
                f"window {order.window_id} is busy: payment {busy} is still in flight"
            )
        attempt_id = order.next_attempt_id(_nonce())
        changes = [
            order.start_attempt(
                attempt_id=attempt_id,
                channel=command.channel,
                terminal_id=command.terminal_id,
                request_id=command.request_id,
                now=now,
                auth_code_masked=mask_auth_code(command.auth_code) if command.auth_code else "",
                cash_received_fen=command.cash_received_fen,
                mode=command.mode,
            )
        ]
        if command.channel is Channel.CASH:
            changes.append(order.record_attempt(attempt_id, AttemptEvent.PAID, now))
            job.after.append(lambda: self._observer.attempt_ended(order, order.attempt(attempt_id)))
            snapshot = self._book.stage(order, changes)
            self._book.save_response(order, command.request_id, snapshot, attempt_id=attempt_id)
            return Done(snapshot)
        self._book.window_busy[order.window_id] = attempt_id
        snapshot = self._book.stage(order, changes)
        self._book.save_response(order, command.request_id, b"", attempt_id=attempt_id)
        job.start_driver = (order.order_id, attempt_id)
        return Accepted(snapshot, attempt_id)

    def cancel(self, job: Job, command: CancelOrder, order: Order) -> Result:
        if order.state is OrderState.CANCELLED:
            return Done(snapshot_of(order))
        if order.state is not OrderState.AWAITING_PAYMENT:
            raise FailedPrecondition(f"order {order.order_id} is {order.state}; cannot cancel")
        change = order.cancel(command.reason, self._clock.now_ms(), command.cancelled_by)
        snapshot = self._book.stage(order, [change])
        self._book.save_response(order, command.request_id, snapshot)
        return Done(snapshot)

    def refund(self, job: Job, command: RefundOrder, order: Order) -> Result:
        terminal_sp = self._config.deployment.window_service_point.get(command.terminal_window_id)
        if terminal_sp != order.service_point_id:
            raise PermissionDenied(
                f"terminal {command.terminal_id} is not at service point "
                f"{order.service_point_id}, where order {order.order_id} was paid"
            )
        paid_in_cash = bool(order.paid_by) and order.attempt(order.paid_by).channel is Channel.CASH
        if paid_in_cash and command.terminal_window_id != order.window_id:
            # The cash went into that window's drawer, and its day's settlement books the
            # refund there: any other drawer would end the day short (docs/SECURITY.md).
            raise PermissionDenied(
                f"order {order.order_id} was paid in cash at window {order.window_id}: its "
                f"cash refund is paid from that window's drawer, so make it at a terminal "
                f"of {order.window_id}, not at {command.terminal_window_id}"
            )
        now = self._clock.now_ms()
        changes = [
            order.request_refund(
                amount_fen=command.amount_fen,
                reason=command.reason,
                supervisor_id=command.supervisor_id,
                terminal_id=command.terminal_id,
                request_id=command.request_id,
                now=now,
                nonce=_nonce(),
            )
        ]
        refund = order.refunds[-1]
        if order.attempt(refund.attempt_id).channel is Channel.CASH:
            # The clerk hands the cash back at the counter.
            changes += order.record_refund(refund.refund_id, succeeded=True, now=now)
            job.after.append(lambda: self._observer.refund_ended(order, refund))
            snapshot = self._book.stage(order, changes)
            self._book.save_response(
                order, command.request_id, snapshot, refund_id=refund.refund_id
            )
            return Done(snapshot)
        snapshot = self._book.stage(order, changes)
        self._book.keep_open(order)  # a refund under way keeps the order open
        self._book.save_response(order, command.request_id, b"", refund_id=refund.refund_id)
        job.start_refund = (order.order_id, refund.refund_id)
        return Accepted(snapshot, refund_id=refund.refund_id)

    def settle_late_success(self, job: Job, command: SettleLateSuccess, order: Order) -> Result:
        attempt = order.attempt(command.attempt_id)
        tries = order.automatic_refunds(attempt.attempt_id)
        if any(r.state is not RefundState.FAILED for r in tries):
            return Done(snapshot_of(order))  # already being (or been) given back
        if attempt.state is AttemptState.SUCCEEDED:
            raise FailedPrecondition(f"attempt {attempt.attempt_id} is the order's payment")
        change = order.record_attempt(
            attempt.attempt_id,
            AttemptEvent.LATE_SUCCESS,
            self._clock.now_ms(),
            trade_no=command.trade_no,
            reason=command.reason,
        )
        refund = order.refunds[-1]
        snapshot = self._book.stage(order, [change])
        self._book.keep_open(order)
        self._book.save_response(order, command.request_id, snapshot, refund_id=refund.refund_id)
        job.start_refund = (order.order_id, refund.refund_id)
        job.after.append(lambda: self._observer.late_success(attempt.channel))
        log.warning(
            "late success found by reconciliation: refunding",
            extra={"order_id": order.order_id, "attempt_id": attempt.attempt_id},
        )
        return Done(snapshot)

    def replay(self, job: Job, stored: bytes, reads: ReadBatchPort) -> Result:
        """The first answer to this request id (or, for a payment, its outcome)."""
        self.release_claims(job, reads, request=False)
        header, _, snapshot = stored.partition(b"\n")
        if snapshot:
            return Done(snapshot)
        meta = orjson.loads(header)
        order = self._book.find(meta["order_id"])
        if order is None:
            if (read := value_of(job.order)) is not None:
                order = self._book.adopt(read)
            else:
                raise NotFound(f"order {meta['order_id']} not found")
        if meta.get("refund_id"):
            return Accepted(snapshot_of(order), refund_id=meta["refund_id"])
        return Accepted(snapshot_of(order), meta["attempt_id"])

    def idempotency(self, command: Command, result: str) -> None:
        self._observer.idempotency(type(command).__name__, result)

    def conflict(self, command: Command) -> Rejected:
        self.idempotency(command, "conflict")
        error = AlreadyExists(
            f"request_id {command.request_id} was already used with different parameters"
        )
        return Rejected(error.code, error.message)

    def release_claims(self, job: Job, reads: ReadBatchPort, *, request: bool = True) -> None:
        """Give back what this job claimed but will not use: nothing is kept for it."""
        batch = self._book.batch
        if request and claimed_now(job.claim):
            batch.release(keys.request_claim(job.command.request_id), job.fingerprint)
        if claimed_now(job.business):
            command = job.command
            assert isinstance(command, CreateOrder)
            batch.release(keys.business_case(command.business_no), job.candidate_id)
        if claimed_now(job.code):
            batch.release(job.code_key, job.command.request_id)


def _nonce() -> str:
    """The random part of a provider-facing id (out_trade_no, out_refund_no)."""
    return base64.b32encode(secrets.token_bytes(5)).decode()[:NONCE_LENGTH]


def not_open_elsewhere(job: Job, reads: ReadBatchPort, elsewhere: dict[str, str]) -> None:
    held = value_of(job.business)
    if not elsewhere or held is None:
        return
    order_id = held.decode()
    if order_id in elsewhere:
        command = job.command
        assert isinstance(command, CreateOrder)
        raise FailedPrecondition(
            f"business case {command.business_no} already has order {order_id}, open at "
            f"service point {elsewhere[order_id]}"
        )
