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
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from orchestrator.domain.states import AttemptEvent, AttemptState
from orchestrator.providers.playbook import NoAnswer, Playbook
from orchestrator.providers.port import (
    PayCall,
    PaymentProvider,
    ProviderError,
    ProviderRejected,
    ReverseStatus,
    TradeAnswer,
    TradeStatus,
)


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
        self, event: AttemptEvent, *, trade_no: str = "", reason: str = ""
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the driver needs to know about one attempt."""

    attempt_id: str
    state: AttemptState
    started_at_ms: int
    call: PayCall | None  # None when resuming after a restart: never pay twice
    follow_up: bool = False  # ended unpaid after a reversal was given up: keep watching


class AttemptDriver:
    def __init__(
        self, provider: PaymentProvider, playbook: Playbook, clock: Clock, record: Recorder
    ) -> None:
        self._provider = provider
        self._playbook = playbook
        self._clock = clock
        self._record = record

    async def run(self, ticket: Ticket) -> None:
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
            if answer is not None and await self._settle(answer):
                return
            if answer is not None and answer.status is TradeStatus.CONFIRMING:
                await self._record(AttemptEvent.PAYER_CONFIRMING)
                state = AttemptState.AWAITING_PAYER
            else:
                why = "provider refused the pay call" if refused else "no answer to the pay call"
                await self._record(AttemptEvent.NO_ANSWER, reason=why)
                state = AttemptState.UNKNOWN
                if self._playbook.no_answer is NoAnswer.REVERSE and not refused:
                    await self._reverse(ticket, already_recorded=False, why=why)
                    return
        await self._poll(ticket, state, refused)

    async def _poll(self, ticket: Ticket, state: AttemptState, refused: bool) -> None:
        playbook = self._playbook
        resumed = ticket.call is None
        first = True
        while True:
            if not (resumed and first):
                await self._clock.sleep(playbook.query_interval_s)
            first = False
            answer = await self._query(ticket.attempt_id)
            if answer is not None:
                if await self._settle(answer):
                    return
                if answer.status is TradeStatus.NOT_FOUND:
                    if refused:
                        await self._record(
                            AttemptEvent.DECLINED,
                            reason="provider refused the pay call and recorded no trade",
                        )
                        return
                    if resumed:
                        # The pay call may never have left before the restart: close the
                        # trade number so that it can never be paid later.
                        await self._reverse(
                            ticket, already_recorded=False, why="unknown after a restart"
                        )
                        return
                elif answer.status is TradeStatus.CONFIRMING and state is not (
                    AttemptState.AWAITING_PAYER
                ):
                    await self._record(AttemptEvent.PAYER_CONFIRMING)
                    state = AttemptState.AWAITING_PAYER
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
                answer = await asyncio.wait_for(
                    self._provider.reverse(ticket.attempt_id), playbook.query_timeout_s
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
            await self._clock.sleep(playbook.follow_up_interval_s)
            answer = await self._query(ticket.attempt_id)
            if answer is None:
                continue
            if answer.status is TradeStatus.PAID:
                await self._record(
                    AttemptEvent.LATE_SUCCESS,
                    trade_no=answer.trade_no,
                    reason="paid after the reversal was given up",
                )
                return
            if answer.status is TradeStatus.CONFIRMING:
                # The payer is still on it: try once more to close the trade.
                with contextlib.suppress(ProviderError, TimeoutError):
                    await asyncio.wait_for(
                        self._provider.reverse(ticket.attempt_id), playbook.query_timeout_s
                    )
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
        """The pay call with the documented resends; (answer, refused every time)."""
        playbook = self._playbook
        for attempt in range(playbook.pay_retries + 1):
            try:
                return (
                    await asyncio.wait_for(self._provider.pay(call), playbook.pay_timeout_s),
                    False,
                )
            except TimeoutError:
                return None, False
            except ProviderRejected as error:
                return TradeAnswer(TradeStatus.DECLINED, reason=f"refused: {error}"), False
            except ProviderError as error:
                if not error.retryable:
                    return None, False
                if attempt < playbook.pay_retries:
                    await self._clock.sleep(playbook.query_interval_s)
        return None, True

    async def _query(self, out_trade_no: str) -> TradeAnswer | None:
        try:
            return await asyncio.wait_for(
                self._provider.query(out_trade_no), self._playbook.query_timeout_s
            )
        except (ProviderError, TimeoutError):
            return None

    async def _settle(self, answer: TradeAnswer) -> bool:
        """Record a final answer; False when the answer is not final."""
        if answer.status is TradeStatus.PAID:
            await self._record(AttemptEvent.PAID, trade_no=answer.trade_no)
            return True
        if answer.status in (TradeStatus.DECLINED, TradeStatus.CLOSED):
            await self._record(
                AttemptEvent.DECLINED,
                trade_no=answer.trade_no,
                reason=answer.reason or answer.status.value,
            )
            return True
        return False

    def _elapsed_s(self, ticket: Ticket) -> float:
        return (self._clock.now_ms() - ticket.started_at_ms) / 1000


class RefundRecorder(Protocol):
    def __call__(
        self, *, succeeded: bool, refund_no: str = "", reason: str = ""
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class RefundTicket:
    refund_id: str  # the out_refund_no: resending it never refunds twice
    attempt_id: str
    amount_fen: int
    total_fen: int
    created_at_ms: int


class RefundDriver:
    """Sends one refund until the provider answers it, resending the same refund number
    after any error; gives up only after the channel's reversal window."""

    def __init__(
        self, provider: PaymentProvider, playbook: Playbook, clock: Clock, record: RefundRecorder
    ) -> None:
        self._provider = provider
        self._playbook = playbook
        self._clock = clock
        self._record = record

    async def run(self, ticket: RefundTicket) -> None:
        playbook = self._playbook
        while True:
            try:
                answer = await asyncio.wait_for(
                    self._provider.refund(
                        ticket.attempt_id, ticket.refund_id, ticket.amount_fen, ticket.total_fen
                    ),
                    playbook.query_timeout_s,
                )
            except (ProviderError, TimeoutError):
                answer = None
            if answer is not None:
                await self._record(
                    succeeded=answer.done, refund_no=answer.refund_no, reason=answer.reason
                )
                return
            elapsed = (self._clock.now_ms() - ticket.created_at_ms) / 1000
            if elapsed >= playbook.reverse_give_up_after_s:
                await self._record(
                    succeeded=False, reason="no answer from the provider; left to reconciliation"
                )
                return
            await self._clock.sleep(playbook.reverse_interval_s)
