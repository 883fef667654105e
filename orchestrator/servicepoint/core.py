"""ServicePointCore: the windows of one or more service points, as an ordinary class.

The Ray actor in actors/ only wraps it. Per batch of commands it does:

1. prepare: validate and price each command (bad input is refused, nothing stored);
2. one Redis round trip: claim each request id, auth code and business case, fetch any
   stored response and any order not in memory;
3. decide every command synchronously against the in-memory orders (this is what
   serialises each window: no await between reading and changing an order);
4. one group commit; only then are the answers released and provider work started.

Every order that still needs attention is in memory (loaded at start from Redis), so
"one payment in flight per window" is a dictionary lookup, and every provider outcome
is applied by the attempt's driver through `_record`, durably, before the next call.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from orchestrator.channels.codes import check_auth_code
from orchestrator.config import Config
from orchestrator.domain.calendar import expiry_after, local_day
from orchestrator.domain.catalog import PricedLine, price_lines
from orchestrator.domain.codes import auth_code_digest, mask_auth_code
from orchestrator.domain.commands import (
    Accepted,
    CancelOrder,
    Command,
    CreateOrder,
    Done,
    Pay,
    Refund,
    Rejected,
    Result,
    SettleLateSuccess,
    fingerprint,
)
from orchestrator.domain.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from orchestrator.domain.order import NONCE_LENGTH, Change, Order
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    RefundState,
)
from orchestrator.domain.validation import check_id, check_text
from orchestrator.providers.engine import (
    AttemptDriver,
    Clock,
    RefundDriver,
    RefundTicket,
    SystemClock,
    Ticket,
)
from orchestrator.providers.port import PayCall, PaymentProvider, TradeRef
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.observer import CoreObserver, MetricsObserver
from orchestrator.servicepoint.supervisor import DriverSupervisor
from orchestrator.store import keys
from orchestrator.store.port import Read, ReadBatchPort, StorePort
from orchestrator.store.write_batch import WriteBatch

log = logging.getLogger(__name__)

RECENT_ORDERS = 4096  # closed orders kept in memory after use


@dataclass(slots=True)
class _Job:
    """One command of a batch on its way through prepare, read, decide, commit."""

    command: Command
    fingerprint: str
    sp: str
    future: asyncio.Future[Result]
    lines: tuple[PricedLine, ...] = ()
    catalog_version: str = ""
    candidate_id: str = ""
    code_key: str = ""
    claim: Read | None = None
    response: Read | None = None
    business: Read | None = None
    code: Read | None = None
    order: Read | None = None
    result: Result | None = None
    start_driver: tuple[str, str] | None = None  # (order id, attempt id)
    start_refund: tuple[str, str] | None = None  # (order id, refund id)
    after: list[Callable[[], None]] = field(default_factory=list)  # once durable


def _exit_process(error: BaseException) -> None:
    log.critical("commit to Redis failed, restarting to recover from it: %s", error)
    import os

    os._exit(70)


class ServicePointCore:
    def __init__(
        self,
        service_points: Sequence[str],
        config: Config,
        store: StorePort,
        providers: Mapping[Channel, PaymentProvider],
        clock: Clock | None = None,
        on_fatal: Callable[[BaseException], None] = _exit_process,
        observer: CoreObserver | None = None,
    ) -> None:
        self.service_points = tuple(service_points)
        self._config = config
        self._settings = config.settings
        self._store = store
        self._providers = providers
        self._clock = clock or SystemClock()
        self._ttl_ms = config.settings.idempotency_ttl_s * 1000
        deployment = config.deployment
        self._windows = {
            w
            for sp in deployment.service_points
            if sp.id in self.service_points
            for w in sp.windows
        }
        self._open: dict[str, Order] = {}
        self._recent: OrderedDict[str, Order] = OrderedDict()
        self._window_busy: dict[str, str] = {}  # window -> attempt id in flight
        self._requests: dict[str, tuple[str, asyncio.Future[Result]]] = {}
        self._drivers = DriverSupervisor()
        self._observer = observer or MetricsObserver()
        self._epochs: dict[str, int] = {}
        self._commit = GroupCommit(self._flush, on_fatal)
        self._ready = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Take the service points over and resume every order that needs attention."""
        for sp in self.service_points:
            self._epochs[sp] = await self._store.take_over(sp)
            for snapshot in await self._store.open_orders(sp):
                order = Order.from_record(orjson.loads(snapshot))
                self._open[order.order_id] = order
        resumed = 0
        for order in self._open.values():
            attempt = order.in_flight()
            if attempt is not None:
                self._window_busy[order.window_id] = attempt.attempt_id
            for attempt in order.attempts:
                if not attempt.final or attempt.follow_up:
                    self._start_driver(order.order_id, attempt.attempt_id, call=None)
                    resumed += 1
            for refund in order.pending_refunds():
                self._start_refund(order, refund.refund_id)
                resumed += 1
        self._sweeper = asyncio.create_task(self._sweep_expired())
        self._ready.set()
        log.info(
            "service points %s ready: %d open orders, %d attempts resumed",
            ",".join(self.service_points),
            len(self._open),
            resumed,
        )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self._drivers.stop()

    async def ready(self) -> bool:
        await self._ready.wait()
        return True

    def in_flight(self) -> dict[str, tuple[int, float, int]]:
        """Per service point: attempts not final, age of the oldest (s), how many are
        past the time their playbook says they should have been final by."""
        now = self._clock.now_ms()
        summary = {sp: (0, 0.0, 0) for sp in self.service_points}
        for order in self._open.values():
            attempt = order.in_flight()
            if attempt is None:
                continue
            count, oldest, late = summary[order.service_point_id]
            age = (now - attempt.created_at) / 1000
            stuck = age > self._config.playbook(attempt.channel).final_by_s
            summary[order.service_point_id] = (count + 1, max(oldest, age), late + stuck)
        return summary

    def status(self) -> dict[str, Any]:
        return {
            "service_points": list(self.service_points),
            "open_orders": len(self._open),
            "drivers": len(self._drivers),
            "flushes": self._commit.flushes,
            "last_flush_waiters": self._commit.last_batch_size,
        }

    # ---- commands -------------------------------------------------------------------

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        await self._ready.wait()
        loop = asyncio.get_running_loop()
        results: list[Result | asyncio.Future[Result]] = []
        jobs: list[_Job] = []
        for command in commands:
            self._observer.submitted(type(command).__name__)
            try:
                job = self._prepare(command, loop)
            except DomainError as error:
                results.append(Rejected(error.code, error.message))
                continue
            held = self._requests.get(command.request_id)
            if held is not None:  # a concurrent duplicate: share the first one's answer
                if held[0] == job.fingerprint:
                    self._idempotency(command, "replayed")
                    results.append(held[1])
                else:
                    results.append(self._conflict(command))
                continue
            self._requests[command.request_id] = (job.fingerprint, job.future)
            jobs.append(job)
            results.append(job.future)
        if jobs:
            await self._run(jobs)
        return [r if not isinstance(r, asyncio.Future) else await r for r in results]

    async def _run(self, jobs: list[_Job]) -> None:
        try:
            reads = self._store.read_batch()
            for job in jobs:
                self._plan_reads(job, reads)
            await reads.run()
            elsewhere = await self._load_existing_cases(jobs, reads)
            for job in jobs:
                try:
                    _not_open_elsewhere(job, reads, elsewhere)
                    job.result = self._decide(job, reads)
                except DomainError as error:
                    self._release_claims(job, reads)
                    job.result = Rejected(error.code, error.message)
            await self._commit.durable()
        except BaseException as error:
            for job in jobs:
                self._requests.pop(job.command.request_id, None)
                if not job.future.done():
                    job.future.set_exception(error)
            raise
        for job in jobs:
            self._requests.pop(job.command.request_id, None)
            if job.start_driver is not None:
                self._start_driver(*job.start_driver, call=self._pay_call(job))
            if job.start_refund is not None:
                order_id, refund_id = job.start_refund
                self._start_refund(self._open[order_id], refund_id)
            for observe in job.after:
                observe()
            assert job.result is not None
            job.future.set_result(job.result)
        self._trim_recent()

    def _prepare(self, command: Command, loop: asyncio.AbstractEventLoop) -> _Job:
        check_id(command.request_id, "request_id")
        if isinstance(command, CreateOrder):
            check_id(command.business_no, "business_no")
            check_text(command.payer_name, "payer_name", required=True, limit=64)
            if command.window_id not in self._windows:
                raise InvalidArgument(f"window {command.window_id!r} is not served here")
            sp = self._config.deployment.window_service_point[command.window_id]
            now = self._clock.now_ms()
            catalog = self._config.fees.in_force_on(local_day(now, self._settings.zone).date())
            job = _Job(command, fingerprint(command), sp, loop.create_future())
            job.lines = price_lines(catalog, command.lines)
            job.catalog_version = catalog.version
            job.candidate_id = _new_order_id(sp)
            return job
        sp = self._service_point_of(command.order_id)
        if isinstance(command, Pay):
            check_auth_code(command.channel, command.auth_code)
            if command.channel is Channel.CASH:
                if command.cash_received_fen <= 0:
                    raise InvalidArgument("cash_received_fen is required for a cash payment")
            elif command.cash_received_fen:
                raise InvalidArgument("cash_received_fen applies to cash payments only")
            job = _Job(command, fingerprint(command), sp, loop.create_future())
            if command.channel is not Channel.CASH:
                job.code_key = keys.auth_code(auth_code_digest(command.auth_code))
            return job
        if isinstance(command, SettleLateSuccess):
            check_id(command.attempt_id, "attempt_id")
            check_text(command.reason, "reason", required=True, limit=200)
            return _Job(command, fingerprint(command), sp, loop.create_future())
        if isinstance(command, Refund):
            check_id(command.supervisor_id, "supervisor_id")
            check_text(command.reason, "reason", required=True, limit=200)
            if command.amount_fen <= 0:
                raise InvalidArgument("amount_fen of a refund must be positive")
            return _Job(command, fingerprint(command), sp, loop.create_future())
        check_text(command.reason, "reason", required=False, limit=200)
        return _Job(command, fingerprint(command), sp, loop.create_future())

    def _service_point_of(self, order_id: str) -> str:
        try:
            sp = keys.service_point_of(order_id)
        except ValueError:
            raise InvalidArgument(f"{order_id!r} is not an order id") from None
        if sp not in self._epochs:
            raise NotFound(f"order {order_id} not found")
        return sp

    def _plan_reads(self, job: _Job, reads: ReadBatchPort) -> None:
        command = job.command
        job.claim = reads.claim(
            keys.request_claim(command.request_id), job.fingerprint, self._ttl_ms
        )
        job.response = reads.get(keys.response(job.sp, command.request_id))
        if isinstance(command, CreateOrder):
            job.business = reads.claim(
                keys.business_case(command.business_no), job.candidate_id, None
            )
            return
        if job.code_key:
            job.code = reads.claim(job.code_key, command.request_id, self._ttl_ms)
        if self._find(command.order_id) is None:
            job.order = reads.order(command.order_id)

    async def _load_existing_cases(self, jobs: list[_Job], reads: ReadBatchPort) -> dict[str, str]:
        """Second read, rarely needed: orders named by business cases that already exist.
        Returns those open at a service point this actor does not serve (order -> point):
        only the commands naming them fail, not the batch they came with."""
        missing = []
        for job in jobs:
            if (held := _value(job.business)) is not None:
                order_id = held.decode().removesuffix(keys.RECORDED)
                if self._find(order_id) is None:
                    missing.append(order_id)
        if not missing:
            return {}
        more = self._store.read_batch()
        found = {order_id: more.order(order_id) for order_id in missing}
        await more.run()
        elsewhere = {}
        for order_id, read in found.items():
            if read.value is not None:
                try:
                    self._adopt(read.value)
                except FailedPrecondition:
                    elsewhere[order_id] = keys.service_point_of(order_id)
        return elsewhere

    def _decide(self, job: _Job, reads: ReadBatchPort) -> Result:
        command = job.command
        holder = _value(job.claim)
        if holder is not None and holder.decode() != job.fingerprint:
            self._release_claims(job, reads)
            return self._conflict(command)
        stored = _value(job.response)
        if stored is not None:
            self._idempotency(command, "replayed")
            return self._replay(job, stored, reads)
        if isinstance(command, CreateOrder):
            return self._create(job, command, reads)
        if (snapshot := _value(job.order)) is not None:
            self._adopt(snapshot)
        order = self._find(command.order_id)
        if order is None:
            raise NotFound(f"order {command.order_id} not found")
        if isinstance(command, Pay):
            return self._pay(job, command, order, reads)
        if isinstance(command, Refund):
            return self._refund(job, command, order)
        if isinstance(command, SettleLateSuccess):
            return self._settle_late_success(job, command, order)
        return self._cancel(job, command, order)

    def _create(self, job: _Job, command: CreateOrder, reads: ReadBatchPort) -> Result:
        existing_id = _value(job.business)
        if existing_id is not None:
            held = existing_id.decode()
            existing = self._find(held.removesuffix(keys.RECORDED))
            if existing is None and held.endswith(keys.RECORDED):  # left Redis, paid
                raise FailedPrecondition(
                    f"business case {command.business_no} already has order "
                    f"{held.removesuffix(keys.RECORDED)} (in the record)"
                )
            if existing is not None and existing.state not in (
                OrderState.CANCELLED,
                OrderState.EXPIRED,
            ):
                if existing.window_id == command.window_id and existing.same_lines(job.lines):
                    snapshot = _snapshot(existing)
                    self._save_response(existing, command.request_id, snapshot)
                    return Done(snapshot)
                raise FailedPrecondition(
                    f"business case {command.business_no} already has order "
                    f"{existing.order_id} ({existing.state}) with other fee items or window"
                )
            # The case's earlier order was withdrawn or expired (or never committed).
            self._commit.batch.set(keys.business_case(command.business_no), job.candidate_id)
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
        )
        self._open[order.order_id] = order
        snapshot = self._stage(order, [change])
        self._commit.batch.mark_open(job.sp, order.order_id, order.window_id)
        self._save_response(order, command.request_id, snapshot)
        return Done(snapshot)

    def _pay(self, job: _Job, command: Pay, order: Order, reads: ReadBatchPort) -> Result:
        if order.window_id != command.terminal_window_id:
            raise PermissionDenied(
                f"terminal {command.terminal_id} is bound to window "
                f"{command.terminal_window_id}, not to {order.window_id} of order {order.order_id}"
            )
        if _value(job.code) not in (None, command.request_id.encode()):
            raise FailedPrecondition("this auth code was already used; ask the payer to refresh it")
        now = self._clock.now_ms()
        if order.state is OrderState.AWAITING_PAYMENT and now >= order.expires_at:
            self._stage(order, [order.expire(now)])
            raise FailedPrecondition(f"order {order.order_id} expired and can no longer be paid")
        busy = self._window_busy.get(order.window_id)
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
                auth_code_masked=mask_auth_code(command.auth_code),
                cash_received_fen=command.cash_received_fen,
            )
        ]
        if command.channel is Channel.CASH:
            changes.append(order.record_attempt(attempt_id, AttemptEvent.PAID, now))
            job.after.append(lambda: self._observer.attempt_ended(order, order.attempt(attempt_id)))
            snapshot = self._stage(order, changes)
            self._save_response(order, command.request_id, snapshot, attempt_id=attempt_id)
            return Done(snapshot)
        self._window_busy[order.window_id] = attempt_id
        snapshot = self._stage(order, changes)
        self._save_response(order, command.request_id, b"", attempt_id=attempt_id)
        job.start_driver = (order.order_id, attempt_id)
        return Accepted(snapshot, attempt_id)

    def _cancel(self, job: _Job, command: CancelOrder, order: Order) -> Result:
        if order.state is OrderState.CANCELLED:
            return Done(_snapshot(order))
        if order.state is not OrderState.AWAITING_PAYMENT:
            raise FailedPrecondition(f"order {order.order_id} is {order.state}; cannot cancel")
        snapshot = self._stage(order, [order.cancel(command.reason, self._clock.now_ms())])
        self._save_response(order, command.request_id, snapshot)
        return Done(snapshot)

    def _refund(self, job: _Job, command: Refund, order: Order) -> Result:
        terminal_sp = self._config.deployment.window_service_point.get(command.terminal_window_id)
        if terminal_sp != order.service_point_id:
            raise PermissionDenied(
                f"terminal {command.terminal_id} is not at service point "
                f"{order.service_point_id}, where order {order.order_id} was paid"
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
            snapshot = self._stage(order, changes)
            self._save_response(order, command.request_id, snapshot, refund_id=refund.refund_id)
            return Done(snapshot)
        snapshot = self._stage(order, changes)
        self._keep_open(order)  # a refund under way keeps the order open
        self._save_response(order, command.request_id, b"", refund_id=refund.refund_id)
        job.start_refund = (order.order_id, refund.refund_id)
        return Accepted(snapshot, refund_id=refund.refund_id)

    def _settle_late_success(self, job: _Job, command: SettleLateSuccess, order: Order) -> Result:
        attempt = order.attempt(command.attempt_id)
        tries = order.automatic_refunds(attempt.attempt_id)
        if any(r.state is not RefundState.FAILED for r in tries):
            return Done(_snapshot(order))  # already being (or been) given back
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
        snapshot = self._stage(order, [change])
        self._keep_open(order)
        self._save_response(order, command.request_id, snapshot, refund_id=refund.refund_id)
        job.start_refund = (order.order_id, refund.refund_id)
        job.after.append(lambda: self._observer.late_success(attempt.channel))
        log.warning(
            "late success found by reconciliation: refunding",
            extra={"order_id": order.order_id, "attempt_id": attempt.attempt_id},
        )
        return Done(snapshot)

    def _keep_open(self, order: Order) -> None:
        """A closed order with new work (a refund) comes back under the actor's care."""
        if order.order_id not in self._open:
            self._recent.pop(order.order_id, None)
            self._open[order.order_id] = order
            self._commit.batch.mark_open(order.service_point_id, order.order_id, order.window_id)

    def _replay(self, job: _Job, stored: bytes, reads: ReadBatchPort) -> Result:
        """The first answer to this request id (or, for a payment, its outcome)."""
        self._release_claims(job, reads, request=False)
        header, _, snapshot = stored.partition(b"\n")
        if snapshot:
            return Done(snapshot)
        meta = orjson.loads(header)
        order = self._find(meta["order_id"])
        if order is None:
            if (read := _value(job.order)) is not None:
                order = self._adopt(read)
            else:
                raise NotFound(f"order {meta['order_id']} not found")
        if meta.get("refund_id"):
            return Accepted(_snapshot(order), refund_id=meta["refund_id"])
        return Accepted(_snapshot(order), meta["attempt_id"])

    def _idempotency(self, command: Command, result: str) -> None:
        self._observer.idempotency(type(command).__name__, result)

    def _conflict(self, command: Command) -> Rejected:
        self._idempotency(command, "conflict")
        error = AlreadyExists(
            f"request_id {command.request_id} was already used with different parameters"
        )
        return Rejected(error.code, error.message)

    def _release_claims(self, job: _Job, reads: ReadBatchPort, *, request: bool = True) -> None:
        """Give back what this job claimed but will not use: nothing is kept for it."""
        batch = self._commit.batch
        if request and _claimed_now(job.claim):
            batch.release(keys.request_claim(job.command.request_id), job.fingerprint)
        if _claimed_now(job.business):
            command = job.command
            assert isinstance(command, CreateOrder)
            batch.release(keys.business_case(command.business_no), job.candidate_id)
        if _claimed_now(job.code):
            batch.release(job.code_key, job.command.request_id)

    # ---- provider work ------------------------------------------------------------

    def _pay_call(self, job: _Job) -> PayCall:
        command = job.command
        assert isinstance(command, Pay)
        order = self._open[command.order_id]
        assert job.start_driver is not None
        attempt = order.attempt(job.start_driver[1])
        return PayCall(
            out_trade_no=attempt.attempt_id,
            auth_code=command.auth_code,
            amount_fen=attempt.amount_fen,
            store_id=order.service_point_id,
            terminal_id=command.terminal_id,
            description=_description(order),
            at_ms=attempt.created_at,
        )

    def _start_driver(self, order_id: str, attempt_id: str, call: PayCall | None) -> None:
        order = self._open[order_id]
        attempt = order.attempt(attempt_id)
        driver = AttemptDriver(
            self._providers[attempt.channel],
            self._config.playbook(attempt.channel),
            self._clock,
            self._recorder(order_id, attempt_id),
        )
        ticket = Ticket(
            attempt_id,
            attempt.state,
            attempt.created_at,
            call,
            attempt.amount_fen,
            attempt.follow_up,
        )
        self._drivers.start(attempt_id, "attempt", driver.run(ticket))

    def _recorder(self, order_id: str, attempt_id: str) -> Any:
        async def record(event: AttemptEvent, *, trade_no: str = "", reason: str = "") -> None:
            order = self._open[order_id]
            change = order.record_attempt(
                attempt_id, event, self._clock.now_ms(), trade_no=trade_no, reason=reason
            )
            attempt = order.attempt(attempt_id)
            ended = self._window_busy.get(order.window_id) == attempt_id and attempt.final
            snapshot = self._stage(order, [change])
            if ended:
                del self._window_busy[order.window_id]
                self._save_response(order, attempt.request_id, snapshot, attempt_id=attempt_id)
            await self._commit.durable()
            if ended:
                self._observer.attempt_ended(order, attempt)
            if event is AttemptEvent.REVERSED:
                self._observer.reversal(attempt.channel, "done")
            elif event is AttemptEvent.REVERSAL_ABANDONED:
                self._observer.reversal(attempt.channel, "abandoned")
                log.warning(
                    "reversal given up; following the trade up",
                    extra={"order_id": order_id, "attempt_id": attempt_id},
                )
            elif event is AttemptEvent.LATE_SUCCESS:
                self._observer.late_success(attempt.channel)
                log.warning(
                    "late success: refunding it automatically",
                    extra={"order_id": order_id, "attempt_id": attempt_id},
                )
                self._start_refund(order, order.refunds[-1].refund_id)

        return record

    def _start_refund(self, order: Order, refund_id: str) -> None:
        refund = order.refund(refund_id)
        attempt = order.attempt(refund.attempt_id)
        order_id = order.order_id

        async def record(*, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
            live = self._open[order_id]
            changes = live.record_refund(
                refund_id,
                succeeded=succeeded,
                now=self._clock.now_ms(),
                refund_no=refund_no,
                reason=reason,
            )
            snapshot = self._stage(live, changes)
            if refund.request_id:
                self._save_response(live, refund.request_id, snapshot, refund_id=refund_id)
            await self._commit.durable()
            self._observer.refund_ended(live, live.refund(refund_id))

        def overdue(on: bool) -> None:
            self._observer.refund_overdue(attempt.channel, on)
            if on:
                log.warning(
                    "refund still pending at the provider past refund_pending_alert_s",
                    extra={"order_id": order_id, "refund_id": refund_id},
                )

        driver = RefundDriver(
            self._providers[attempt.channel],
            self._config.playbook(attempt.channel),
            self._clock,
            record,
            alert_after_s=self._settings.refund_pending_alert_s * self._settings.time_scale,
            overdue=overdue,
        )
        paid = TradeRef(
            attempt.attempt_id, attempt.amount_fen, attempt.created_at, attempt.provider_trade_no
        )
        ticket = RefundTicket(refund_id, paid, refund.amount_fen, refund.created_at)
        self._drivers.start(refund_id, "refund", driver.run(ticket))

    async def _sweep_expired(self) -> None:
        while True:
            await self._clock.sleep(self._settings.expiry_sweep_interval_s)
            now = self._clock.now_ms()
            due = [
                order
                for order in self._open.values()
                if order.state is OrderState.AWAITING_PAYMENT and now >= order.expires_at
            ]
            for order in due:
                self._stage(order, [order.expire(now)])
            if due:
                await self._commit.durable()
                log.info("expired %d unpaid orders", len(due))

    # ---- memory and staging ---------------------------------------------------------

    def _find(self, order_id: str) -> Order | None:
        return self._open.get(order_id) or self._recent.get(order_id)

    def _adopt(self, snapshot: bytes) -> Order:
        """An order read from Redis; memory wins if it already holds it."""
        order = Order.from_record(orjson.loads(snapshot))
        known = self._find(order.order_id)
        if known is not None:
            return known
        if order.is_open:  # cannot happen while this actor owns the service point
            raise FailedPrecondition(f"order {order.order_id} is open but was not loaded")
        self._recent[order.order_id] = order
        return order

    def _stage(self, order: Order, changes: list[Change]) -> bytes:
        """Queue the order's new state for the next group commit, with the payment events
        it raises; track whether it is open."""
        snapshot = _snapshot(order)
        sp = order.service_point_id
        batch = self._commit.batch
        now = changes[-1].at
        batch.note_day(sp, local_day(now, self._settings.zone).strftime("%Y%m%d"), order.order_id)
        for kind, refund_id in _payment_events(order, changes):
            batch.emit(sp, kind, now, refund_id, snapshot)
        batch.save_order(
            sp,
            order.order_id,
            order.version - len(changes),
            order.version,
            snapshot,
            [orjson.dumps(change.to_record()) for change in changes],
            f"{order.order_id} {order.window_id} {order.version}\n".encode() + snapshot,
        )
        if not order.is_open and order.order_id in self._open:
            del self._open[order.order_id]
            self._recent[order.order_id] = order
            batch.mark_closed(sp, order.order_id)
        return snapshot

    def _save_response(
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
        self._commit.batch.save_response(
            order.service_point_id, request_id, header + b"\n" + snapshot, self._ttl_ms
        )

    def _trim_recent(self) -> None:
        while len(self._recent) > RECENT_ORDERS:
            order_id = next(iter(self._recent))
            if self._commit.unflushed(order_id):
                self._recent.move_to_end(order_id)
                break
            del self._recent[order_id]

    async def _flush(self, batch: WriteBatch) -> None:
        await self._store.commit(batch, self._epochs)


def _value(read: Read | None) -> bytes | None:
    """What a read of the batch found; None if it found nothing or was not made."""
    return None if read is None else read.value


def _claimed_now(read: Read | None) -> bool:
    """Whether this command took the claim (the key was free)."""
    return read is not None and read.value is None


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


def _snapshot(order: Order) -> bytes:
    return orjson.dumps(order.to_record())


def _nonce() -> str:
    """The random part of a provider-facing id (out_trade_no, out_refund_no)."""
    return base64.b32encode(secrets.token_bytes(5)).decode()[:NONCE_LENGTH]


def _new_order_id(sp: str) -> str:
    token = base64.b32encode(secrets.token_bytes(10)).decode()[:14]
    return f"{sp}-{token}"


def _description(order: Order) -> str:
    first = order.lines[0].name
    more = f"等{len(order.lines)}项" if len(order.lines) > 1 else ""
    return f"{first}{more}"[:100]


__all__ = ["AttemptState", "ServicePointCore"]


def _not_open_elsewhere(job: _Job, reads: ReadBatchPort, elsewhere: dict[str, str]) -> None:
    held = _value(job.business)
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
