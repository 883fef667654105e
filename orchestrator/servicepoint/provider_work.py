"""The provider work of a service-point core: the drivers that take each payment attempt
and each refund under way to its outcome, and the notifications that reach them.

An attempt is driven by an AttemptDriver (a QrDriver when the payer scans a QR code), a
refund by a RefundDriver (providers/engine.py), each as one task under the supervisor
(supervisor.py). Every outcome a driver reaches is recorded through its recorder,
durably (one group commit), before its next provider call; an attempt that ends frees
its window and keeps the answer a replay of its request gives. A late success starts
the refund that gives it back. A provider's notification reaches the driver of its
attempt or refund through the notice desk (notices.py).

The core starts the work a committed decision names (`start`), resumes at start, and
after a recall or a reload from the record, the work an open order is waiting for
(`resume`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.config import Config
from orchestrator.domain import ids
from orchestrator.domain.commands import Pay
from orchestrator.domain.errors import FailedPrecondition
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, Channel, PayMode
from orchestrator.providers.engine import AttemptDriver, Clock, RefundDriver, RefundTicket, Ticket
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.providers.port import PayCall, PaymentProvider, QrCall, TradeRef
from orchestrator.providers.qr_driver import QrDriver
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.job import Job
from orchestrator.servicepoint.notices import NoticeDesk
from orchestrator.servicepoint.observer import CoreObserver
from orchestrator.servicepoint.orders import OrderBook, Reloading
from orchestrator.servicepoint.supervisor import DriverSupervisor
from orchestrator.store.port import StorePort

log = logging.getLogger(__name__)


class ProviderWork:
    def __init__(
        self,
        service_points: Iterable[str],
        config: Config,
        store: StorePort,
        providers: Mapping[Channel, PaymentProvider],
        clock: Clock,
        book: OrderBook,
        commit: GroupCommit,
        observer: CoreObserver,
    ) -> None:
        self._order_ids = ids.OrderIds(tuple(service_points))
        self._config = config
        self._settings = config.settings
        self._store = store
        self._providers = providers
        self._clock = clock
        self._book = book
        self._commit = commit
        self._observer = observer
        self._drivers = DriverSupervisor()
        self._notices = NoticeDesk(self._order_named_by, config.notify.apply_wait_s)

    def __len__(self) -> int:
        """How many drivers are running."""
        return len(self._drivers)

    async def stop(self) -> None:
        await self._drivers.stop()

    def resume(self, order: Order) -> int:
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

    def start(self, job: Job) -> None:
        """Start the work a decision named, once its writes are durable."""
        if job.start_driver is not None:
            self._start_driver(
                *job.start_driver, call=self._pay_call(job), qr_call=self._qr_call(job)
            )
        if job.start_refund is not None:
            order_id, refund_id = job.start_refund
            self._start_refund(self._book.open[order_id], refund_id)

    def in_flight(self, service_points: Iterable[str]) -> dict[str, tuple[int, float, int]]:
        """Per service point: attempts not final, age of the oldest (s), how many are
        past the time their playbook says they should have been final by."""
        now = self._clock.now_ms()
        summary = {sp: (0, 0.0, 0) for sp in service_points}
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

    # ---- notifications ------------------------------------------------------------

    async def observe(self, notice: Notice) -> NoticeOutcome:
        """A provider's verified notification: one more answer about a trade or refund."""
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

    # ---- attempts and refunds -----------------------------------------------------

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


def _description(order: Order) -> str:
    first = order.lines[0].name
    more = f"等{len(order.lines)}项" if len(order.lines) > 1 else ""
    return f"{first}{more}"[:100]
