"""The payer scans: the engine's procedure for a QR attempt (docs/DOMAIN.md, section 4,
"Attempts the payer scans").

The provider makes a code; while it is valid the trade is queried like any other, except
that a failed try of the payer ends nothing: the code stays payable at the provider (WeChat
Native stays NOTPAY, Alipay WAIT_BUYER_PAY, and UnionPay documents no end of the code after
a failed try), so the payer may try again. The attempt ends unpaid only when the provider
closes the trade itself, or when it expires and windowpay's close is confirmed; then it is
watched a while longer for a payment that raced the close (a late success, refunded by
the core). As in the AttemptDriver it extends, every decision is recorded before the next
call is sent.
"""

from __future__ import annotations

from orchestrator.domain.states import FINAL_ATTEMPT_STATES, AttemptEvent, AttemptState
from orchestrator.providers.engine import AttemptDriver, Ticket, trade_observation, within
from orchestrator.providers.notices import settled
from orchestrator.providers.port import (
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    QrCall,
    ReverseStatus,
    TradeAnswer,
    TradeStatus,
)


class QrDriver(AttemptDriver):
    """Runs one PAYER_SCANS_QR attempt to its end (the core picks it by the attempt's mode)."""

    async def _run(self, ticket: Ticket) -> None:
        """Make the code, wait for the payer while asking the provider (or hearing from
        it: a notification in the inbox is taken instead of the next query), close the
        trade when the code expires, then look a while longer for a payment racing the
        close."""
        state = ticket.state
        if ticket.follow_up:
            await self._qr_follow_up(ticket, ticket.state)
            return
        if state is AttemptState.REVERSING:
            await self._close(ticket, already_recorded=True, why="")
            return
        expires_at_ms = ticket.qr_expires_at_ms
        if state is AttemptState.SUBMITTED and ticket.qr_call is not None:
            call = ticket.qr_call
            made, why = await self._make_qr(call)
            if made is None and why:
                await self._record(AttemptEvent.DECLINED, reason=why)
                return
            if made is None:
                await self._record(AttemptEvent.NO_ANSWER, reason="no clear answer to the QR code")
                await self._close(ticket, already_recorded=False, why="QR code request unclear")
                return
            await self._record(
                AttemptEvent.QR_CODE_READY, qr_code_url=made, qr_expires_at=call.expires_at_ms
            )
            state, expires_at_ms = AttemptState.AWAITING_PAYER, call.expires_at_ms
        elif state is not AttemptState.AWAITING_PAYER or not expires_at_ms:
            # Resumed before the code was known: it may exist at the provider; close it.
            await self._close(ticket, already_recorded=False, why="QR code unknown after a restart")
            return
        await self._qr_wait(ticket, state, expires_at_ms)

    async def _make_qr(self, call: QrCall) -> tuple[str | None, str]:
        """(the code's URL, "") or (None, why it was refused) or (None, "") if unclear."""
        playbook = self._playbook
        for attempt in range(playbook.pay_retries + 1):
            try:
                made = await within(playbook.pay_timeout_s, self._provider.create_qr(call))
                return made.code_url, ""
            except ProviderRejected as error:
                return None, f"QR code refused: {error}"
            except ProviderUnavailable:
                if attempt < playbook.pay_retries:
                    await self._clock.sleep(playbook.query_interval_s)
            except (ProviderError, TimeoutError):
                return None, ""
        return None, ""

    async def _qr_wait(self, ticket: Ticket, state: AttemptState, expires_at_ms: int) -> None:
        interval = self._playbook.query_interval_s
        while True:
            noticed = self.inbox.take()
            answer = noticed[0] if noticed else await self._query(ticket)
            if answer is not None:
                state = await self._observe_open_code(state, answer)
                if noticed:
                    settled(noticed[1], state in FINAL_ATTEMPT_STATES)
                if state is AttemptState.FAILED:  # the provider closed the trade itself
                    await self._qr_follow_up(ticket, state)
                if state in FINAL_ATTEMPT_STATES:
                    return
            left_s = (expires_at_ms - self._clock.now_ms()) / 1000
            if left_s <= 0:
                break
            await self.inbox.nap(self._clock.sleep(min(interval, left_s)))
        await self._close(ticket, already_recorded=False, why="QR code expired")

    async def _observe_open_code(self, state: AttemptState, answer: TradeAnswer) -> AttemptState:
        """What an answer means while the code is open: a declined try is the payer still
        trying (their next try may pay), so it is left unrecorded; a payment, or the
        trade closed by the provider, ends the attempt as with any answer."""
        if answer.status is TradeStatus.DECLINED:
            return state
        return await self._observe(state, answer)

    async def _close(self, ticket: Ticket, *, already_recorded: bool, why: str) -> None:
        """Close the trade until the provider confirms it (an unclear answer is asked
        again): then the order is payable again. Paid first: the payment stands, found
        by a query or told by the provider's notification (which also serves when the
        queries fail: UnionPay's close itself begins with one)."""
        playbook = self._playbook
        if not already_recorded:
            await self._record(AttemptEvent.REVERSAL_STARTED, reason=why)
        started_ms = self._clock.now_ms()
        while True:
            noticed = self.inbox.take()
            if noticed is not None:  # the provider told of a payment that beat the close
                state = await self._observe(AttemptState.REVERSING, noticed[0])
                settled(noticed[1], state in FINAL_ATTEMPT_STATES)
                if state in FINAL_ATTEMPT_STATES:
                    return
            try:
                answer = await within(playbook.query_timeout_s, self._provider.close(ticket.trade))
            except (ProviderError, TimeoutError):
                answer = None
            if answer is not None and answer.status is ReverseStatus.DONE:
                await self._record(AttemptEvent.REVERSED, reason=why or "QR code closed")
                await self._qr_follow_up(ticket, AttemptState.REVERSED)
                return
            if answer is not None and answer.status is ReverseStatus.PAID:
                paid = await self._query(ticket)
                if paid is not None and paid.status is TradeStatus.PAID:
                    await self._record(AttemptEvent.PAID, trade_no=paid.trade_no)
                    return
            waited_s = (self._clock.now_ms() - started_ms) / 1000
            if waited_s >= playbook.reverse_give_up_after_s:
                await self._record(
                    AttemptEvent.REVERSAL_ABANDONED,
                    reason="close not confirmed in time; following the trade up",
                )
                await self._qr_follow_up(ticket, AttemptState.FAILED)
                return
            await self.inbox.nap(self._clock.sleep(playbook.reverse_interval_s))

    async def _qr_follow_up(self, ticket: Ticket, ended: AttemptState) -> None:
        """After the close: a payment that raced it shows up paid; it is a late success
        (refunded by the core). Closed or unknown answers do not end the watch early."""
        playbook = self._playbook
        until_ms = self._clock.now_ms() + int(playbook.qr_follow_up_s * 1000)
        while self._clock.now_ms() < until_ms:
            await self.inbox.nap(self._clock.sleep(playbook.follow_up_interval_s))
            noticed = self.inbox.take()
            answer = noticed[0] if noticed else await self._query(ticket)
            found = answer is not None and trade_observation(ended, answer) is not None
            if answer is not None and found:
                await self._observe(ended, answer)  # found paid: a late success, refunded
            if noticed:
                settled(noticed[1], found)
            if found:
                return
        await self._record(
            AttemptEvent.FOLLOW_UP_CLEARED,
            reason="no payment after the close; reconciliation settles the rest",
        )
