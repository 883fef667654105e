"""The polling, timeout and reversal engine shared by every channel.

One AttemptDriver runs one attempt from its pay call (or from wherever a restart found
it) to a final state, following the channel's Playbook. Every decision is recorded
(durably, by the caller's `record`) before the next provider call is sent, so a crash
at any point resumes from the last recorded state: query first, then reverse if needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from orchestrator.domain.playbook import NoAnswer, Playbook
from orchestrator.domain.states import (
    FINAL_ATTEMPT_STATES,
    AttemptEvent,
    AttemptState,
    next_attempt_state,
)
from orchestrator.providers.notices import Inbox, settled
from orchestrator.providers.port import (
    PayCall,
    PaymentProvider,
    ProviderError,
    ProviderUnavailable,
    QrCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)

T = TypeVar("T")


async def within(seconds: float, call: Awaitable[T]) -> T:
    """`call`, or TimeoutError after `seconds`. Awaited in the caller's own task, so a
    cancellation that comes in the same turn as the provider's answer still cancels
    (Python 3.11's `asyncio.wait_for` returns the answer and drops it; a driver then ran
    on, and stopping its service point hung)."""
    async with asyncio.timeout(seconds):
        return await call


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(max(0.0, seconds))


class Recorder(Protocol):
    def __call__(
        self,
        event: AttemptEvent,
        *,
        trade_no: str = "",
        reason: str = "",
        qr_code_url: str = "",
        qr_expires_at: int | None = None,
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class Observation:
    event: AttemptEvent
    trade_no: str = ""
    reason: str = ""


def trade_observation(state: AttemptState, answer: TradeAnswer) -> Observation | None:
    """What one verified provider answer about a trade (a query's, or a notification's)
    means for an attempt in `state`: the event to record, or None when it changes
    nothing. The one place such an answer is turned into a decision."""
    if state in FINAL_ATTEMPT_STATES:
        if answer.status is TradeStatus.PAID and state in (
            AttemptState.FAILED,
            AttemptState.REVERSED,
        ):
            return Observation(
                AttemptEvent.LATE_SUCCESS, answer.trade_no, "paid after the attempt ended unpaid"
            )
        return None
    if answer.status is TradeStatus.PAID:
        return Observation(AttemptEvent.PAID, answer.trade_no)
    if state is AttemptState.REVERSING:
        return None  # the reversal or close decides
    if answer.status in (TradeStatus.DECLINED, TradeStatus.CLOSED):
        return Observation(
            AttemptEvent.DECLINED, answer.trade_no, answer.reason or answer.status.value
        )
    if answer.status is TradeStatus.CONFIRMING and state in (
        AttemptState.SUBMITTED,
        AttemptState.UNKNOWN,
    ):
        return Observation(AttemptEvent.PAYER_CONFIRMING)
    return None


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the driver needs to know about one attempt."""

    attempt_id: str
    state: AttemptState
    started_at_ms: int
    call: PayCall | None  # None when resuming after a restart: never pay twice
    amount_fen: int  # what the pay call asked: an answer naming another amount is ignored
    follow_up: bool = False  # ended unpaid after a reversal was given up: keep watching
    qr_call: QrCall | None = None  # None when resuming: the code is never asked twice
    qr_expires_at_ms: int = 0  # when the code is closed (0: not made yet)

    @property
    def trade(self) -> TradeRef:
        return TradeRef(self.attempt_id, self.amount_fen, self.started_at_ms)


class AttemptDriver:
    def __init__(
        self, provider: PaymentProvider, playbook: Playbook, clock: Clock, record: Recorder
    ) -> None:
        self._provider = provider
        self._playbook = playbook
        self._clock = clock
        self._record = record
        # Answers from the provider's notifications: taken instead of the next query.
        self.inbox: Inbox[TradeAnswer] = Inbox()

    async def run(self, ticket: Ticket) -> None:
        try:
            await self._run(ticket)
        finally:
            self.inbox.close()

    async def _run(self, ticket: Ticket) -> None:
        state = ticket.state
        if ticket.follow_up:
            await self._follow_up(ticket)
            return
        if state is AttemptState.REVERSING:
            await self._reverse(ticket, already_recorded=True, why="")
            return
        refused = False
        if state is AttemptState.SUBMITTED and ticket.call is not None:
            answer, refused = await self._pay(ticket.call)
            if answer is not None:
                state = await self._observe(state, answer)
                if state in FINAL_ATTEMPT_STATES:
                    return
            if state is not AttemptState.AWAITING_PAYER:
                why = (
                    "the pay call never got through"
                    if refused
                    else "no clear answer to the pay call"
                )
                await self._record(AttemptEvent.NO_ANSWER, reason=why)
                state = AttemptState.UNKNOWN
                if self._playbook.no_answer is NoAnswer.REVERSE:
                    # UnionPay: any sale without a clear answer is reversed (冲正) before
                    # the window's next sale, even one that seemed never to arrive.
                    await self._reverse(ticket, already_recorded=False, why=why)
                    return
        await self._poll(ticket, state, refused)

    async def _poll(self, ticket: Ticket, state: AttemptState, refused: bool) -> None:
        playbook = self._playbook
        resumed = ticket.call is None
        first = True
        while True:
            if not (resumed and first):
                await self.inbox.nap(self._clock.sleep(playbook.query_interval_s))
            first = False
            noticed = self.inbox.take()
            answer = noticed[0] if noticed else await self._query(ticket)
            if answer is not None:
                state = await self._observe(state, answer)
                if noticed:
                    settled(noticed[1], state in FINAL_ATTEMPT_STATES)
                if state in FINAL_ATTEMPT_STATES:
                    return
                if answer.status is TradeStatus.NOT_FOUND:
                    if refused:
                        await self._record(
                            AttemptEvent.DECLINED,
                            reason="the pay call never reached the provider, which has no trade",
                        )
                        return
                    if resumed:
                        # The pay call may never have left before the restart: close the
                        # trade number so that it can never be paid later.
                        await self._reverse(
                            ticket, already_recorded=False, why="unknown after a restart"
                        )
                        return
            if self._elapsed_s(ticket) >= playbook.confirm_window_s:
                why = (
                    "payer did not confirm in time"
                    if state is AttemptState.AWAITING_PAYER
                    else "outcome still unknown"
                )
                await self._reverse(ticket, already_recorded=False, why=why)
                return

    async def _reverse(self, ticket: Ticket, *, already_recorded: bool, why: str) -> None:
        playbook = self._playbook
        if not already_recorded:
            await self._record(AttemptEvent.REVERSAL_STARTED, reason=why)
        wait = playbook.reverse_not_before_s - self._elapsed_s(ticket)
        if wait > 0:
            await self._clock.sleep(wait)
        while True:
            try:
                answer = await within(
                    playbook.query_timeout_s, self._provider.reverse(ticket.trade)
                )
            except (ProviderError, TimeoutError):
                answer = None
            if answer is not None and answer.status is ReverseStatus.DONE:
                await self._record(AttemptEvent.REVERSED, reason=why or answer.reason)
                return
            if self._elapsed_s(ticket) >= playbook.reverse_give_up_after_s:
                await self._record(
                    AttemptEvent.REVERSAL_ABANDONED,
                    reason="reversal not confirmed in time; following the trade up",
                )
                await self._follow_up(ticket)
                return
            await self._clock.sleep(playbook.reverse_interval_s)

    async def _follow_up(self, ticket: Ticket) -> None:
        """The attempt ended unpaid without the provider's word: ask until it gives one.
        A payment found after all is a late success; the core refunds it."""
        playbook = self._playbook
        while self._elapsed_s(ticket) < playbook.follow_up_window_s:
            await self.inbox.nap(self._clock.sleep(playbook.follow_up_interval_s))
            noticed = self.inbox.take()
            answer = noticed[0] if noticed else await self._query(ticket)
            if answer is None:
                continue
            if answer.status is TradeStatus.PAID:
                await self._record(
                    AttemptEvent.LATE_SUCCESS,
                    trade_no=answer.trade_no,
                    reason="paid after the reversal was given up",
                )
                if noticed:
                    settled(noticed[1], True)
                return
            if noticed:
                settled(noticed[1], False)
                continue  # only a payment changes what follow-up does
            if answer.status is TradeStatus.CONFIRMING:
                # The payer is still on it: try once more to close the trade.
                with contextlib.suppress(ProviderError, TimeoutError):
                    await within(playbook.query_timeout_s, self._provider.reverse(ticket.trade))
                continue
            await self._record(
                AttemptEvent.FOLLOW_UP_CLEARED, reason=f"provider kept nothing ({answer.status})"
            )
            return
        await self._record(
            AttemptEvent.FOLLOW_UP_CLEARED,
            reason="follow-up window over; reconciliation settles the rest",
        )

    async def _pay(self, call: PayCall) -> tuple[TradeAnswer | None, bool]:
        """The pay call; (answer, never got through). Only a call that provably never
        reached the provider (connection refused) is sent again: any other error, an
        unsigned 5xx from a proxy included, may hide a payment and leaves it unknown.
        Only a decline on the channel's allow-list is final (the adapter decides)."""
        playbook = self._playbook
        for attempt in range(playbook.pay_retries + 1):
            try:
                return (
                    await within(playbook.pay_timeout_s, self._provider.pay(call)),
                    False,
                )
            except TimeoutError:
                return None, False
            except ProviderUnavailable:
                if attempt < playbook.pay_retries:
                    await self._clock.sleep(playbook.query_interval_s)
            except ProviderError:
                return None, False
        return None, True

    async def _query(self, ticket: Ticket) -> TradeAnswer | None:
        try:
            return await within(self._playbook.query_timeout_s, self._provider.query(ticket.trade))
        except (ProviderError, TimeoutError):
            return None

    async def _observe(self, state: AttemptState, answer: TradeAnswer) -> AttemptState:
        """Record what a provider answer means for the attempt; its state after that."""
        observation = trade_observation(state, answer)
        if observation is None:
            return state
        await self._record(
            observation.event, trade_no=observation.trade_no, reason=observation.reason
        )
        if observation.event is AttemptEvent.LATE_SUCCESS:
            return state
        return next_attempt_state(state, observation.event)

    def _elapsed_s(self, ticket: Ticket) -> float:
        return (self._clock.now_ms() - ticket.started_at_ms) / 1000


class RefundRecorder(Protocol):
    def __call__(
        self, *, succeeded: bool, refund_no: str = "", reason: str = ""
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class RefundTicket:
    refund_id: str  # the out_refund_no: resending it never refunds twice
    trade: TradeRef  # the paid trade
    amount_fen: int
    created_at_ms: int


class RefundDriver:
    """Takes one refund to the provider's final word, however long that takes.

    The refund is sent, and sent again (same number) while it gets no answer; an answer
    that is not final (processing, "already refunded", an unknown code) is followed by
    the refund's own query until the provider says SUCCEEDED or FAILED. It never gives
    up: past `alert_after_s` it reports itself overdue (a person looks) and goes on."""

    def __init__(
        self,
        provider: PaymentProvider,
        playbook: Playbook,
        clock: Clock,
        record: RefundRecorder,
        *,
        alert_after_s: float = float("inf"),
        overdue: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self._provider = provider
        self._playbook = playbook
        self._clock = clock
        self._record = record
        self._alert_after_s = alert_after_s
        self._overdue = overdue
        self.inbox: Inbox[RefundAnswer] = Inbox()
        self.last_reason = ""  # the provider's last word that was not final

    async def run(self, ticket: RefundTicket) -> None:
        call = RefundCall(ticket.trade, ticket.refund_id, ticket.amount_fen, ticket.created_at_ms)
        flagged = False
        send = True  # else: ask the refund's own query
        try:
            while True:
                noticed = self.inbox.take()
                if noticed:
                    answer: RefundAnswer | None = noticed[0]
                else:
                    answer = await self._ask(self._provider.refund if send else self._status, call)
                if answer is not None and answer.final:
                    await self._record(
                        succeeded=answer.status is RefundStatus.SUCCEEDED,
                        refund_no=answer.refund_no,
                        reason=answer.reason or answer.status.value,
                    )
                    if noticed:
                        settled(noticed[1], True)
                    return
                if noticed:
                    settled(noticed[1], False)
                    continue  # a notification that tells no outcome changes nothing
                if answer is not None:
                    # Pending: query it. Not found: it never arrived, send it again.
                    send = answer.status is RefundStatus.NOT_FOUND
                    if answer.status is RefundStatus.PENDING or not self.last_reason:
                        self.last_reason = answer.reason or answer.status.value
                # No answer at all: the same question again (a resend is harmless).
                elapsed = (self._clock.now_ms() - ticket.created_at_ms) / 1000
                if not flagged and elapsed >= self._alert_after_s:
                    flagged = True
                    self._overdue(True)
                await self.inbox.nap(self._clock.sleep(self._playbook.reverse_interval_s))
        finally:
            self.inbox.close()
            if flagged:
                self._overdue(False)

    async def _status(self, call: RefundCall) -> RefundAnswer:
        return await self._provider.refund_query(call)

    async def _ask(
        self, operation: Callable[[RefundCall], Awaitable[RefundAnswer]], call: RefundCall
    ) -> RefundAnswer | None:
        try:
            return await within(self._playbook.query_timeout_s, operation(call))
        except (ProviderError, TimeoutError):
            return None
