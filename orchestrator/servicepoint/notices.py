"""How a service point takes a provider's notification: as one more answer about an
attempt or a refund, handed to the driver that is taking it to its outcome.

The driver applies it exactly as it applies the answer to its own query (engine.py), so
a notification and a query never race and the state machine is not repeated here. An
attempt or refund already final is compared, not changed: a notification that agrees is
a duplicate, one that does not is left to reconciliation. A notification for an attempt
whose driver has not yet recorded its pay call's answer waits in the driver's inbox
until it has; if that takes longer than `wait_s`, the provider is answered "not
received" and sends it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from orchestrator.domain.errors import FailedPrecondition
from orchestrator.domain.order import Attempt, Order, Refund
from orchestrator.domain.states import AttemptState, RefundState
from orchestrator.providers.notices import Inbox, Notice, NoticeOutcome
from orchestrator.providers.port import RefundAnswer, RefundStatus, TradeAnswer, TradeStatus

log = logging.getLogger(__name__)

AnswerT = TypeVar("AnswerT")
FindOrder = Callable[[str], Awaitable[Order | None]]  # by an attempt or refund id


class NoticeDesk:
    def __init__(self, find_order: FindOrder, wait_s: float) -> None:
        self._find_order = find_order
        self._wait_s = wait_s
        self.attempts: dict[str, Inbox[TradeAnswer]] = {}
        self.refunds: dict[str, Inbox[RefundAnswer]] = {}

    async def listening(
        self, inboxes: dict[str, Inbox[AnswerT]], key: str, inbox: Inbox[AnswerT],
        run: Awaitable[None],
    ) -> None:  # fmt: skip
        """Run a driver whose inbox is registered (by the caller) under `key`."""
        try:
            await run
        finally:
            if inboxes.get(key) is inbox:
                del inboxes[key]

    async def observe(self, notice: Notice) -> NoticeOutcome:
        order = await self._find_order(notice.out_no)
        if order is None:
            return NoticeOutcome.UNKNOWN
        try:
            refund = order.refund(notice.out_refund_no) if notice.is_refund else None
            attempt = order.attempt(refund.attempt_id if refund else notice.out_trade_no)
        except FailedPrecondition:
            return NoticeOutcome.UNKNOWN
        mismatch = _mismatch(notice, attempt, refund)
        if mismatch:
            log.warning(
                "notification refused: %s", mismatch,
                extra={"order_id": order.order_id, "out_no": notice.out_no},
            )  # fmt: skip
            return NoticeOutcome.MISMATCH
        if not notice.final:
            return NoticeOutcome.IGNORED
        if refund is not None:
            return await self._refund(notice, refund)
        return await self._attempt(notice, order, attempt)

    async def _attempt(self, notice: Notice, order: Order, attempt: Attempt) -> NoticeOutcome:
        inbox = self.attempts.get(attempt.attempt_id)
        if inbox is not None:
            applied = await self._hand(inbox.put(notice.trade_answer()))
            if applied:
                return NoticeOutcome.APPLIED
        if attempt.final and not attempt.follow_up:
            if _agrees(notice, order, attempt):
                return NoticeOutcome.DUPLICATE
            log.warning(
                "notification says %s of an attempt recorded %s: left to reconciliation",
                notice.trade_status, attempt.state, extra={"out_no": notice.out_no},
            )  # fmt: skip
            return NoticeOutcome.IGNORED
        return NoticeOutcome.DEFERRED

    async def _refund(self, notice: Notice, refund: Refund) -> NoticeOutcome:
        inbox = self.refunds.get(refund.refund_id)
        if inbox is not None:
            applied = await self._hand(inbox.put(notice.refund_answer()))
            if applied:
                return NoticeOutcome.APPLIED
        if refund.state is RefundState.PENDING:
            return NoticeOutcome.DEFERRED
        told = RefundState.SUCCEEDED if notice.refund_status is RefundStatus.SUCCEEDED else None
        if refund.state is (told or RefundState.FAILED):
            return NoticeOutcome.DUPLICATE
        log.warning(
            "notification says %s of a refund recorded %s: left to reconciliation",
            notice.refund_status, refund.state, extra={"out_no": notice.out_no},
        )  # fmt: skip
        return NoticeOutcome.IGNORED

    async def _hand(self, applied: asyncio.Future[bool]) -> bool:
        """Whether the driver applied the answer within `wait_s` (if not, it may still:
        the provider's resend then finds it recorded)."""
        try:
            return await asyncio.wait_for(asyncio.shield(applied), self._wait_s)
        except TimeoutError:
            return False


def _agrees(notice: Notice, order: Order, attempt: Attempt) -> bool:
    """Whether the record already tells what the notice does. A payment is recorded as
    a success, or as a late success (an attempt that ended unpaid, its money refunded or
    being refunded automatically): the provider resending that notification is a
    duplicate, not something left for reconciliation."""
    if notice.trade_status is TradeStatus.PAID:
        return attempt.state is AttemptState.SUCCEEDED or bool(
            order.automatic_refunds(attempt.attempt_id)
        )
    return attempt.state in (AttemptState.FAILED, AttemptState.REVERSED)


def _mismatch(notice: Notice, attempt: Attempt, refund: Refund | None) -> str:
    """Why the notification cannot be about this attempt (or refund); "" when it can."""
    if notice.out_trade_no and notice.out_trade_no != attempt.attempt_id:
        return f"out_trade_no {notice.out_trade_no!r} is not the refund's trade"
    if notice.channel is not attempt.channel:
        return f"channel {notice.channel} is not the attempt's {attempt.channel}"
    if attempt.provider_trade_no and notice.trade_no != attempt.provider_trade_no:
        return f"trade number {notice.trade_no!r} is not {attempt.provider_trade_no!r}"
    expected = attempt.amount_fen if refund is None else refund.amount_fen
    if notice.amount_fen != expected:
        return f"amount {notice.amount_fen} fen is not {expected} fen"
    return ""
