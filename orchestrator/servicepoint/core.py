"""ServicePointCore: the windows of one or more service points, as an ordinary class.

The Ray actor in actors/ only wraps it. Per batch of commands it does, through each
command's handler (handlers.py, looked up by the command's type):

1. prepare: validate and price each command (bad input is refused, nothing stored);
2. one Redis round trip: claim each request id, auth code and business case, fetch any
   stored response and any order not in memory;
3. decide every command synchronously against the in-memory orders (this is what
   serialises each window: no await between reading and changing an order), over the
   orders in memory (orders.py);
4. one group commit; only then are the answers released and provider work started.

Every order that still needs attention is in memory (loaded at start from Redis), so
"one payment in flight per window" is a dictionary lookup, and every provider outcome
is applied by the attempt's driver through `_record`, durably, before the next call.
A closed order that has left Redis is recalled from the record, put back into Redis,
when a refund or a late success's refund names it (recall.py), between steps 2 and 3.
The drivers run under a supervisor (supervisor.py); metrics go through an observer
(observer.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from orchestrator.config import Config
from orchestrator.domain import ids
from orchestrator.domain.commands import (
    Command,
    Pay,
    Rejected,
    Result,
)
from orchestrator.domain.errors import (
    DomainError,
    FailedPrecondition,
)
from orchestrator.domain.order import Order
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    PayMode,
)
from orchestrator.providers.engine import (
    AttemptDriver,
    Clock,
    RefundDriver,
    RefundTicket,
    SystemClock,
    Ticket,
)
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.providers.port import PayCall, PaymentProvider, QrCall, TradeRef
from orchestrator.providers.qr_driver import QrDriver
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.handlers import CommandHandlers
from orchestrator.servicepoint.job import Job, value_of
from orchestrator.servicepoint.lost import LostOrders
from orchestrator.servicepoint.notices import NoticeDesk
from orchestrator.servicepoint.observer import CoreObserver, MetricsObserver
from orchestrator.servicepoint.orders import OrderBook, Reloading
from orchestrator.servicepoint.recall import OrderRecall, RecordMismatch, RecordUnavailable
from orchestrator.servicepoint.supervisor import DriverSupervisor
from orchestrator.store.chain import Head
from orchestrator.store.port import RecordPort, StorePort
from orchestrator.store.write_batch import WriteBatch

log = logging.getLogger(__name__)


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
        record: RecordPort | None = None,
    ) -> None:
        self.service_points = tuple(service_points)
        self._order_ids = ids.OrderIds(self.service_points)
        self._config = config
        self._settings = config.settings
        self._store = store
        self._providers = providers
        self._clock = clock or SystemClock()
        self._ttl_ms = config.settings.idempotency_ttl_s * 1000
        self._requests: dict[str, tuple[str, asyncio.Future[Result]]] = {}
        self._drivers = DriverSupervisor()
        self._observer = observer or MetricsObserver()
        self._epochs: dict[str, int] = {}
        self._heads: dict[tuple[str, str], Head] = {}  # (service point, day) -> chain head
        self._commit = GroupCommit(self._flush, on_fatal)
        self._book = OrderBook(self._commit, config.settings.zone, self._ttl_ms)
        self._handlers = CommandHandlers(
            config, self._book, self._clock, self._observer, self.service_points
        )
        self._ready = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._reloader: asyncio.Task[None] | None = None
        self._notices = NoticeDesk(self._order_named_by, config.notify.apply_wait_s)
        self._lost = LostOrders(store, self._book, self._commit, self._clock, self._resume)
        settings = config.settings
        retention_ms = int(config.record.retention_s * settings.time_scale * 1000)
        self._recall = OrderRecall(store, record, retention_ms, self._observer)

    # ---- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Take the service points over and resume every order that needs attention."""
        for sp in self.service_points:
            self._epochs[sp] = await self._store.take_over(sp)
            live = await self._store.open_orders(sp)
            for snapshot in live.snapshots:
                order = Order.from_record(orjson.loads(snapshot))
                self._book.open[order.order_id] = order
            if live.missing:
                await self._lost.report(sp, live.missing)
        resumed = sum(self._resume(order) for order in self._book.open.values())
        self._sweeper = asyncio.create_task(self._sweep_expired())
        if self._book.missing:
            self._reloader = asyncio.create_task(self._lost.take_back())
        self._ready.set()
        log.info(
            "service points %s ready: %d open orders, %d attempts resumed",
            ",".join(self.service_points),
            len(self._book.open),
            resumed,
        )

    def _resume(self, order: Order) -> int:
        """Start the provider work an open order is waiting for; how many were started."""
        resumed = 0
        attempt = order.in_flight()
        if attempt is not None:
            self._book.window_busy.setdefault(order.window_id, attempt.attempt_id)
        for attempt in order.attempts:
            if not attempt.final or attempt.follow_up:
                self._start_driver(order.order_id, attempt.attempt_id, call=None)
                resumed += 1
        for refund in order.pending_refunds():
            self._start_refund(order, refund.refund_id)
            resumed += 1
        return resumed

    async def stop(self) -> None:
        for task in (self._sweeper, self._reloader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._drivers.stop()

    async def ready(self) -> bool:
        await self._ready.wait()
        return True

    def in_flight(self) -> dict[str, tuple[int, float, int]]:
        """Per service point: attempts not final, age of the oldest (s), how many are
        past the time their playbook says they should have been final by."""
        now = self._clock.now_ms()
        summary = {sp: (0, 0.0, 0) for sp in self.service_points}
        for order in self._book.open.values():
            attempt = order.in_flight()
            if attempt is None:
                continue
            count, oldest, late = summary[order.service_point_id]
            age = (now - attempt.created_at) / 1000
            playbook = self._config.playbook(attempt.channel)
            stuck = age > (playbook.qr_final_by_s if attempt.scans_qr else playbook.final_by_s)
            summary[order.service_point_id] = (count + 1, max(oldest, age), late + stuck)
        return summary

    def missing_orders(self) -> dict[str, int]:
        """Per service point: open orders the store had lost, not yet back."""
        return self._lost.counts(self.service_points)

    def status(self) -> dict[str, Any]:
        return {
            "service_points": list(self.service_points),
            "open_orders": len(self._book.open),
            "missing_orders": len(self._book.missing),
            "drivers": len(self._drivers),
            "flushes": self._commit.flushes,
            "last_flush_waiters": self._commit.last_batch_size,
        }

    # ---- commands -------------------------------------------------------------------

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        await self._ready.wait()
        loop = asyncio.get_running_loop()
        results: list[Result | asyncio.Future[Result]] = []
        jobs: list[Job] = []
        for command in commands:
            self._observer.submitted(type(command).__name__)
            handler = self._handlers.of(command)
            try:
                job = handler.prepare(command, loop)
            except DomainError as error:
                results.append(Rejected(error.code, error.message))
                continue
            held = self._requests.get(command.request_id)
            if held is not None:  # a concurrent duplicate: share the first one's answer
                if held[0] == job.fingerprint:
                    handler.idempotency(command, "replayed")
                    results.append(held[1])
                else:
                    results.append(handler.conflict(command))
                continue
            self._requests[command.request_id] = (job.fingerprint, job.future)
            jobs.append(job)
            results.append(job.future)
        if jobs:
            await self._run(jobs)
        return [r if not isinstance(r, asyncio.Future) else await r for r in results]

    async def _run(self, jobs: list[Job]) -> None:
        try:
            reads = self._store.read_batch()
            for job in jobs:
                self._handlers.of(job.command).plan(job, job.command, reads)
            await reads.run()
            await self._from_the_record(jobs)
            await self._handlers.read_more(jobs, self._store)
            for job in jobs:
                handler = self._handlers.of(job.command)
                try:
                    if job.refused is not None:
                        raise job.refused
                    job.result = handler.decide(job, job.command)
                except DomainError as error:
                    handler.release_claims(job, job.command)
                    job.result = Rejected(error.code, error.message)
            await self._commit.durable()
        except BaseException as error:
            for job in jobs:
                self._requests.pop(job.command.request_id, None)
                if not job.future.done():
                    # for a concurrent duplicate awaiting it; this caller gets the raise
                    job.future.set_exception(error)
                    job.future.exception()  # so an unawaited one is not logged as lost
            raise
        for job in jobs:
            self._requests.pop(job.command.request_id, None)
            if job.start_driver is not None:
                self._start_driver(
                    *job.start_driver, call=self._pay_call(job), qr_call=self._qr_call(job)
                )
            if job.start_refund is not None:
                order_id, refund_id = job.start_refund
                self._start_refund(self._book.open[order_id], refund_id)
            for observe in job.after:
                observe()
            assert job.result is not None
            job.future.set_result(job.result)
        self._book.trim_recent()

    async def _from_the_record(self, jobs: list[Job]) -> None:
        """Orders the store no longer holds (closed, past the retention): forgotten here
        too, and for a refund or a late success's refund recalled from the record, so
        that the command decides on the order as it was last."""
        wanted: dict[str, list[Job]] = {}
        for job in jobs:
            if job.order is None or job.order.value is not None:
                continue
            order_id = job.order_id
            if not self._commit.unflushed(order_id):
                self._book.recent.pop(order_id, None)  # gone from the store: stale here
            if (
                job.recalls
                and value_of(job.response) is None
                and value_of(job.claim) in (None, job.fingerprint.encode())
                and self._book.find(order_id) is None
                and order_id not in self._book.missing
            ):
                wanted.setdefault(order_id, []).append(job)
        if not wanted:
            return
        answers = await asyncio.gather(
            *(self._recall.recall(order_id) for order_id in wanted), return_exceptions=True
        )
        for (order_id, waiting), answer in zip(wanted.items(), answers, strict=True):
            if isinstance(answer, RecordUnavailable | RecordMismatch):
                for job in waiting:
                    job.refused = answer
                continue
            if isinstance(answer, BaseException):
                raise answer
            for job in waiting:
                job.order = answer
            if answer.value is not None:
                order = Order.from_record(orjson.loads(answer.value))
                if order.is_open and self._book.find(order_id) is None:
                    # The record had it open (Redis had lost it): in our care again.
                    self._book.open[order_id] = order
                    self._resume(order)

    # ---- notifications ------------------------------------------------------------

    async def observe(self, notice: Notice) -> NoticeOutcome:
        """A provider's verified notification: one more answer about a trade or refund."""
        await self._ready.wait()
        return await self._notices.observe(notice)

    async def _order_named_by(self, out_trade_no: str) -> Order | None:
        """The order of an attempt id (an out_trade_no), from memory or the store."""
        for order_id in self._order_ids.of(out_trade_no):
            order = self._book.find(order_id)
            if order is None:
                reads = self._store.read_batch()
                read = reads.order(order_id)
                await reads.run()
                if read.value is None:
                    continue
                try:
                    order = self._book.adopt(read.value)
                except (FailedPrecondition, Reloading):
                    continue
            return order
        return None

    # ---- provider work ------------------------------------------------------------

    def _pay_call(self, job: Job) -> PayCall:
        command = job.command
        assert isinstance(command, Pay)
        order = self._book.open[command.order_id]
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

    def _qr_call(self, job: Job) -> QrCall | None:
        """The request for the QR code of a PAYER_SCANS_QR attempt (None otherwise)."""
        command = job.command
        assert isinstance(command, Pay) and job.start_driver is not None
        if command.mode is not PayMode.PAYER_SCANS_QR:
            return None
        order = self._book.open[command.order_id]
        attempt = order.attempt(job.start_driver[1])
        expiry_s = self._config.playbook(attempt.channel).qr_expiry_s
        return QrCall(
            out_trade_no=attempt.attempt_id,
            amount_fen=attempt.amount_fen,
            store_id=order.service_point_id,
            terminal_id=command.terminal_id,
            description=_description(order),
            at_ms=attempt.created_at,
            expires_at_ms=attempt.created_at + int(expiry_s * 1000),
        )

    def _start_driver(
        self, order_id: str, attempt_id: str, call: PayCall | None, qr_call: QrCall | None = None
    ) -> None:
        order = self._book.open[order_id]
        attempt = order.attempt(attempt_id)
        if attempt.scans_qr:
            call = None  # a QR attempt has no pay call: the payer's scan pays it
        driver = (QrDriver if attempt.scans_qr else AttemptDriver)(
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
            qr_call=qr_call,
            qr_expires_at_ms=attempt.qr_expires_at or 0,
        )
        inboxes = self._notices.attempts
        inboxes[attempt_id] = driver.inbox
        self._drivers.start(
            attempt_id,
            "attempt",
            self._notices.listening(inboxes, attempt_id, driver.inbox, driver.run(ticket)),
        )

    def _recorder(self, order_id: str, attempt_id: str) -> Any:
        async def record(
            event: AttemptEvent,
            *,
            trade_no: str = "",
            reason: str = "",
            qr_code_url: str = "",
            qr_expires_at: int | None = None,
        ) -> None:
            order = self._book.open[order_id]
            change = order.record_attempt(
                attempt_id, event, self._clock.now_ms(), trade_no=trade_no, reason=reason,
                qr_code_url=qr_code_url, qr_expires_at=qr_expires_at,
            )  # fmt: skip
            attempt = order.attempt(attempt_id)
            ended = self._book.window_busy.get(order.window_id) == attempt_id and attempt.final
            snapshot = self._book.stage(order, [change])
            if ended:
                del self._book.window_busy[order.window_id]
                self._book.save_response(order, attempt.request_id, snapshot, attempt_id=attempt_id)
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
            live = self._book.open[order_id]
            changes = live.record_refund(
                refund_id,
                succeeded=succeeded,
                now=self._clock.now_ms(),
                refund_no=refund_no,
                reason=reason,
            )
            snapshot = self._book.stage(live, changes)
            if refund.request_id:
                self._book.save_response(live, refund.request_id, snapshot, refund_id=refund_id)
            await self._commit.durable()
            self._observer.refund_ended(live, live.refund(refund_id))

        def overdue(on: bool) -> None:
            self._observer.refund_overdue(attempt.channel, on)
            if on:
                log.warning(
                    "refund still pending at the provider past refund_pending_alert_s",
                    extra={
                        "order_id": order_id,
                        "refund_id": refund_id,
                        "reason": driver.last_reason,  # e.g. a refusal left for a person
                    },
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
        inboxes = self._notices.refunds
        inboxes[refund_id] = driver.inbox
        self._drivers.start(
            refund_id,
            "refund",
            self._notices.listening(inboxes, refund_id, driver.inbox, driver.run(ticket)),
        )

    async def _sweep_expired(self) -> None:
        while True:
            await self._clock.sleep(self._settings.expiry_sweep_interval_s)
            now = self._clock.now_ms()
            due = [
                order
                for order in self._book.open.values()
                if order.state is OrderState.AWAITING_PAYMENT and now >= order.expires_at
            ]
            for order in due:
                self._book.stage(order, [order.expire(now)])
            if due:
                await self._commit.durable()
                log.info("expired %d unpaid orders", len(due))

    async def _flush(self, batch: WriteBatch) -> None:
        """Link the batch's journal entries into their chains, then commit: the commit
        script moves each chain's head only if it is still the one linked after."""
        chains = batch.chain_days()
        unknown = sorted(c for c in chains if c not in self._heads)
        if unknown:  # a day this incarnation has not written yet: ask the store
            for which, head in zip(unknown, await self._store.chain_heads(unknown), strict=True):
                self._heads[which] = Head.decode(head)
        actors = {sp: f"{sp}/{epoch}" for sp, epoch in self._epochs.items()}
        moved = batch.link(self._heads, actors)
        await self._store.commit(batch, self._epochs)
        self._heads.update(moved)
        if len(self._heads) > 64:  # days long past: their heads are read again if needed
            for which in [c for c in self._heads if c not in chains]:
                del self._heads[which]


def _description(order: Order) -> str:
    first = order.lines[0].name
    more = f"等{len(order.lines)}项" if len(order.lines) > 1 else ""
    return f"{first}{more}"[:100]


__all__ = ["AttemptState", "ServicePointCore"]
