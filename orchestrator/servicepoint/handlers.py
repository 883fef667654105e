"""Commands as objects: one handler per command type, looked up by the command's type
(`CommandHandlers.of`), owns what that command does at each step of a batch (core.py):

1. prepare: its validation and pricing (bad input is refused, nothing stored);
2. the reads it plans for the batch's one Redis round trip (claims, its stored answer,
   its order if not in memory) and, for a create, the second read of an order its
   business case names;
3. its decision, synchronously against the orders in memory (no await between reading
   an order and changing it: this is what serialises a window). It stages its writes;
   the core commits them, then releases the answer and starts the provider work the
   decision names (provider_work.py).

What every command shares (a reused request id, a replayed answer, giving back the
claims of a refused one) is the base class's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar

import orjson

from orchestrator.channels.registry import check_auth_code
from orchestrator.config import Config
from orchestrator.domain import ids
from orchestrator.domain.auth_codes import auth_code_digest, mask_auth_code
from orchestrator.domain.calendar import expiry_after, local_day
from orchestrator.domain.catalog import price_lines
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
    fingerprint,
)
from orchestrator.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from orchestrator.domain.order import NONCE_LENGTH, Order
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    PayMode,
    RefundState,
)
from orchestrator.domain.validation import check_id, check_request_id, check_text
from orchestrator.providers.engine import Clock
from orchestrator.servicepoint.job import Job, claimed_now, value_of
from orchestrator.servicepoint.observer import CoreObserver
from orchestrator.servicepoint.orders import OrderBook, Reloading, snapshot_of
from orchestrator.store import keys
from orchestrator.store.port import ReadBatchPort, StorePort

log = logging.getLogger(__name__)

CommandT = TypeVar("CommandT", bound=Command)
NamingT = TypeVar("NamingT", bound=Pay | CancelOrder | RefundOrder | SettleLateSuccess)


class CommandHandler(ABC, Generic[CommandT]):
    """What one type of command does at each step of a batch."""

    def __init__(
        self,
        config: Config,
        book: OrderBook,
        clock: Clock,
        observer: CoreObserver,
        service_points: Collection[str],
    ) -> None:
        self._config = config
        self._settings = config.settings
        self._book = book
        self._clock = clock
        self._observer = observer
        self._service_points = service_points  # the ones this core serves
        self._ttl_ms = config.settings.idempotency_ttl_s * 1000

    def prepare(self, command: CommandT, loop: asyncio.AbstractEventLoop) -> Job:
        """Step 1: refuse bad input (nothing is stored for it), or make the command's job."""
        check_request_id(command.request_id)
        return self._prepare(command, loop)

    @abstractmethod
    def _prepare(self, command: CommandT, loop: asyncio.AbstractEventLoop) -> Job: ...

    def plan(self, job: Job, command: CommandT, reads: ReadBatchPort) -> None:
        """Step 2: what the batch's one round trip claims and reads for this command."""
        job.claim = reads.claim(
            keys.request_claim(command.request_id), job.fingerprint, self._ttl_ms
        )
        job.response = reads.get(keys.response(job.sp, command.request_id))
        if job.code_key:
            job.code = reads.claim(job.code_key, command.request_id, self._ttl_ms)

    def decide(self, job: Job, command: CommandT) -> Result:
        """Step 3: the answer, its writes staged; a DomainError refuses the command."""
        holder = value_of(job.claim)
        if holder is not None and holder.decode() != job.fingerprint:
            self.release_claims(job, command)
            return self.conflict(command)
        stored = value_of(job.response)
        if stored is not None:
            self.idempotency(command, "replayed")
            return self.replay(job, stored, command)
        return self._decide(job, command)

    @abstractmethod
    def _decide(self, job: Job, command: CommandT) -> Result: ...

    def replay(self, job: Job, stored: bytes, command: CommandT) -> Result:
        """The first answer to this request id (or, for a payment, its outcome)."""
        self.release_claims(job, command, request=False)
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

    def idempotency(self, command: CommandT, result: str) -> None:
        self._observer.idempotency(type(command).__name__, result)

    def conflict(self, command: CommandT) -> Rejected:
        self.idempotency(command, "conflict")
        error = AlreadyExists(
            f"request_id {command.request_id} was already used with different parameters"
        )
        return Rejected(error.code, error.message)

    def release_claims(self, job: Job, command: CommandT, *, request: bool = True) -> None:
        """Give back what this job claimed but will not use: nothing is kept for it."""
        batch = self._book.batch
        if request and claimed_now(job.claim):
            batch.release(keys.request_claim(command.request_id), job.fingerprint)
        if claimed_now(job.code):
            batch.release(job.code_key, command.request_id)


class CreateOrderHandler(CommandHandler[CreateOrder]):
    @cached_property
    def _windows(self) -> set[str]:
        """The windows of the service points this core serves."""
        return {
            w
            for sp in self._config.deployment.service_points
            if sp.id in self._service_points
            for w in sp.windows
        }

    def _prepare(self, command: CreateOrder, loop: asyncio.AbstractEventLoop) -> Job:
        check_id(command.business_no, "business_no")
        check_text(command.payer_name, "payer_name", required=True, limit=64)
        if command.window_id not in self._windows:
            raise InvalidArgument(f"window {command.window_id!r} is not served here")
        sp = self._config.deployment.window_service_point[command.window_id]
        now = self._clock.now_ms()
        catalog = self._config.fees.in_force_on(local_day(now, self._settings.zone).date())
        job = Job(command, fingerprint(command), sp, loop.create_future())
        job.lines = price_lines(catalog, command.lines)
        job.catalog_version = catalog.version
        job.candidate_id = ids.new_order_id(sp)
        return job

    def plan(self, job: Job, command: CreateOrder, reads: ReadBatchPort) -> None:
        super().plan(job, command, reads)
        job.business = reads.claim(keys.business_case(command.business_no), job.candidate_id, None)

    async def read_cases(self, jobs: Sequence[Job], store: StorePort) -> None:
        """Second read, rarely needed: orders named by business cases that already exist.
        A create naming a case whose order is open at a service point this actor does not
        serve is refused, not the batch it came with."""
        missing = []
        for job in jobs:
            if (held := value_of(job.business)) is not None:
                order_id = held.decode().removesuffix(keys.RECORDED)
                if self._book.find(order_id) is None:
                    missing.append(order_id)
        if not missing:
            return
        more = store.read_batch()
        found = {order_id: more.order(order_id) for order_id in missing}
        await more.run()
        elsewhere = {}
        for order_id, read in found.items():
            if read.value is not None:
                try:
                    self._book.adopt(read.value)
                except Reloading:
                    pass  # the command naming its case is answered UNAVAILABLE
                except FailedPrecondition:
                    elsewhere[order_id] = ids.service_point_of(order_id)
        for job in jobs:
            held = value_of(job.business)
            if held is not None and (order_id := held.decode()) in elsewhere:
                command = job.command
                assert isinstance(command, CreateOrder)
                job.refused = FailedPrecondition(
                    f"business case {command.business_no} already has order {order_id}, "
                    f"open at service point {elsewhere[order_id]}"
                )

    def _decide(self, job: Job, command: CreateOrder) -> Result:
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
        place = self._config.deployment.places.place_of(job.sp)
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
            office_id=place.office_id,
            site_id=place.site_id,
        )
        self._book.open[order.order_id] = order
        snapshot = self._book.stage(order, [change])
        self._book.batch.mark_open(job.sp, order.order_id, order.window_id)
        self._book.save_response(order, command.request_id, snapshot)
        return Done(snapshot)

    def release_claims(self, job: Job, command: CreateOrder, *, request: bool = True) -> None:
        super().release_claims(job, command, request=request)
        if claimed_now(job.business):
            self._book.batch.release(keys.business_case(command.business_no), job.candidate_id)


class OrderCommandHandler(CommandHandler[NamingT]):
    """A command naming an order: read from the store unless in memory, recalled from
    the record (recall.py) if `recalls` and the store no longer holds it."""

    recalls = False

    def _prepare(self, command: NamingT, loop: asyncio.AbstractEventLoop) -> Job:
        sp = ids.service_point_of(command.order_id)
        if sp not in self._service_points:
            raise NotFound(f"order {command.order_id} not found")
        self.check(command)
        job = Job(command, fingerprint(command), sp, loop.create_future())
        job.order_id = command.order_id
        job.recalls = self.recalls
        return job

    def check(self, command: NamingT) -> None:
        """The command's own input, checked once its order's service point is known."""

    def plan(self, job: Job, command: NamingT, reads: ReadBatchPort) -> None:
        super().plan(job, command, reads)
        if command.order_id not in self._book.open:  # a closed one may have left the store
            job.order = reads.order(command.order_id)

    def _decide(self, job: Job, command: NamingT) -> Result:
        if (snapshot := value_of(job.order)) is not None:
            self._book.adopt(snapshot)
        order = self._book.find(command.order_id)
        if order is None:
            if command.order_id in self._book.missing:
                raise Reloading(command.order_id)
            raise NotFound(f"order {command.order_id} not found")
        return self.decide_on(job, command, order)

    @abstractmethod
    def decide_on(self, job: Job, command: NamingT, order: Order) -> Result:
        """The command's decision on the order it names, found in memory."""


class PayHandler(OrderCommandHandler[Pay]):
    def check(self, command: Pay) -> None:
        if command.mode is PayMode.PAYER_SCANS_QR:
            if command.channel is Channel.CASH:
                raise InvalidArgument("cash is paid at the counter, not by a QR code")
            if command.auth_code:
                raise InvalidArgument("no auth_code when the payer scans a QR code")
        else:
            check_auth_code(command.channel, command.auth_code)
        if command.channel is Channel.CASH:
            if command.cash_received_fen <= 0:
                raise InvalidArgument("cash_received_fen is required for a cash payment")
        elif command.cash_received_fen:
            raise InvalidArgument("cash_received_fen applies to cash payments only")

    def _prepare(self, command: Pay, loop: asyncio.AbstractEventLoop) -> Job:
        job = super()._prepare(command, loop)
        if command.channel is not Channel.CASH and command.auth_code:
            job.code_key = keys.auth_code(auth_code_digest(command.auth_code))
        return job

    def decide_on(self, job: Job, command: Pay, order: Order) -> Result:
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


class CancelOrderHandler(OrderCommandHandler[CancelOrder]):
    def check(self, command: CancelOrder) -> None:
        check_text(command.reason, "reason", required=False, limit=200)

    def decide_on(self, job: Job, command: CancelOrder, order: Order) -> Result:
        if order.state is OrderState.CANCELLED:
            return Done(snapshot_of(order))
        if order.state is not OrderState.AWAITING_PAYMENT:
            raise FailedPrecondition(f"order {order.order_id} is {order.state}; cannot cancel")
        change = order.cancel(command.reason, self._clock.now_ms(), command.cancelled_by)
        snapshot = self._book.stage(order, [change])
        self._book.save_response(order, command.request_id, snapshot)
        return Done(snapshot)


class RefundOrderHandler(OrderCommandHandler[RefundOrder]):
    recalls = True

    def check(self, command: RefundOrder) -> None:
        check_id(command.supervisor_id, "supervisor_id")
        check_text(command.reason, "reason", required=True, limit=200)
        if command.amount_fen <= 0:
            raise InvalidArgument("amount_fen of a refund must be positive")

    def decide_on(self, job: Job, command: RefundOrder, order: Order) -> Result:
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


class SettleLateSuccessHandler(OrderCommandHandler[SettleLateSuccess]):
    recalls = True

    def check(self, command: SettleLateSuccess) -> None:
        check_id(command.attempt_id, "attempt_id")
        check_text(command.reason, "reason", required=True, limit=200)

    def decide_on(self, job: Job, command: SettleLateSuccess, order: Order) -> Result:
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


class CommandHandlers:
    """Each command type's handler, made once per core."""

    def __init__(
        self,
        config: Config,
        book: OrderBook,
        clock: Clock,
        observer: CoreObserver,
        service_points: Collection[str],
    ) -> None:
        made = (config, book, clock, observer, service_points)
        self._create = CreateOrderHandler(*made)
        self._by_type: dict[type, CommandHandler[Any]] = {
            CreateOrder: self._create,
            Pay: PayHandler(*made),
            CancelOrder: CancelOrderHandler(*made),
            RefundOrder: RefundOrderHandler(*made),
            SettleLateSuccess: SettleLateSuccessHandler(*made),
        }

    def of(self, command: Command) -> CommandHandler[Any]:
        return self._by_type[type(command)]

    async def read_more(self, jobs: Sequence[Job], store: StorePort) -> None:
        """The second read a batch rarely needs (`CreateOrderHandler.read_cases`)."""
        await self._create.read_cases(jobs, store)


def _nonce() -> str:
    """The random part of a provider-facing id (out_trade_no, out_refund_no)."""
    return base64.b32encode(secrets.token_bytes(5)).decode()[:NONCE_LENGTH]
