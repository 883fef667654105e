"""A failed try at a QR code the payer scans does not end the attempt (issue 20): the
providers keep such a trade open (WeChat Native NOTPAY, Alipay WAIT_BUYER_PAY, UnionPay
documents no end of the code after a failed try), so the payer may try again. Driven
against a scripted fake provider that answers "declined" while the code is open, as a
gateway reporting the failed try would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from orchestrator.config import load_config
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState, PayMode
from orchestrator.providers.engine import AttemptDriver, SystemClock, Ticket
from orchestrator.providers.port import (
    PayCall,
    QrAnswer,
    QrCall,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.qr_driver import QrDriver
from tests.support import Recorded, eventually

SCALE = 0.01  # a query every 50 ms, the code lives 1.2 s, the follow-up 3 s
E, S = AttemptEvent, TradeStatus
AMOUNT = 8000
DECLINED = TradeAnswer(S.DECLINED, "T1", "NOTENOUGH")


class ScriptedProvider:
    """Answers each query with the next answer of its script, then with its last one
    (the drivers here ask nothing else of it)."""

    channel = Channel.WECHAT

    def __init__(self, answers: list[TradeAnswer]) -> None:
        self._answers: Iterator[TradeAnswer] = iter(answers)
        self._last = answers[-1]
        self.queries = 0
        self.closes = 0

    def then(self, answer: TradeAnswer) -> None:
        """From now on, answer this."""
        self._answers, self._last = iter(()), answer

    async def query(self, trade: TradeRef) -> TradeAnswer:
        self.queries += 1
        self._last = next(self._answers, self._last)
        return self._last

    async def create_qr(self, call: QrCall) -> QrAnswer:
        return QrAnswer("fake-qr:1")

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        self.closes += 1
        return ReverseAnswer(ReverseStatus.DONE, "closed")

    async def pay(self, call: PayCall) -> TradeAnswer:
        return DECLINED


def qr_run(provider: ScriptedProvider) -> tuple[Recorded, asyncio.Task[None]]:
    recorded = Recorded(SystemClock())
    attempt_id = recorded.start(Channel.WECHAT, PayMode.PAYER_SCANS_QR)
    playbook = load_config().with_settings(time_scale=SCALE).playbook(Channel.WECHAT)
    at = recorded.order.attempts[-1].created_at
    expires_at = at + int(playbook.qr_expiry_s * 1000)
    call = QrCall(attempt_id, AMOUNT, "SP01", "T01", "科目一", at, expires_at)
    ticket = Ticket(attempt_id, AttemptState.SUBMITTED, at, None, AMOUNT, qr_call=call)
    driver = QrDriver(provider, playbook, SystemClock(), recorded)
    return recorded, asyncio.create_task(driver.run(ticket))


async def queried(provider: ScriptedProvider, times: int) -> None:
    await eventually(lambda: asyncio.sleep(0, provider.queries), lambda n: n >= times, within=5)


async def test_a_declined_try_leaves_the_code_open_and_the_next_try_pays() -> None:
    provider = ScriptedProvider([TradeAnswer(S.CONFIRMING), DECLINED])
    recorded, running = qr_run(provider)
    await queried(provider, 4)  # the payer's try was refused, more than once asked
    attempt = recorded.order.attempts[-1]
    assert (attempt.state, recorded.order.state) == (AttemptState.AWAITING_PAYER, OrderState.PAYING)
    assert recorded.events == [E.QR_CODE_READY]
    provider.then(TradeAnswer(S.PAID, "T1"))  # the payer's second try
    await asyncio.wait_for(running, 5)
    assert recorded.events == [E.QR_CODE_READY, E.PAID]
    assert (attempt.state, recorded.order.state) == (AttemptState.SUCCEEDED, OrderState.PAID)
    assert attempt.provider_trade_no == "T1" and not attempt.failure_reason


async def test_a_declined_code_left_alone_is_closed_at_its_expiry() -> None:
    provider = ScriptedProvider([DECLINED])
    recorded, running = qr_run(provider)
    await asyncio.wait_for(running, 15)
    assert recorded.events == [
        E.QR_CODE_READY, E.REVERSAL_STARTED, E.REVERSED, E.FOLLOW_UP_CLEARED
    ]  # fmt: skip
    assert provider.closes == 1
    assert recorded.order.attempts[-1].state is AttemptState.REVERSED
    assert recorded.order.state is OrderState.AWAITING_PAYMENT


async def test_a_trade_the_provider_closed_ends_the_attempt_and_is_watched() -> None:
    """The provider's own terminal state ends the attempt unpaid; a payment that shows up
    in the watch after it is a late success, refunded."""
    provider = ScriptedProvider([DECLINED, TradeAnswer(S.CLOSED, "T1", "CLOSED")])
    recorded, running = qr_run(provider)
    attempt = recorded.order.attempts[-1]
    await eventually(lambda: asyncio.sleep(0, attempt.state), AttemptState.FAILED.__eq__, within=5)
    assert recorded.order.state is OrderState.AWAITING_PAYMENT
    assert not running.done()  # still watching for a payment that raced the end
    provider.then(TradeAnswer(S.PAID, "T1"))
    await asyncio.wait_for(running, 10)
    assert recorded.events == [E.QR_CODE_READY, E.DECLINED, E.LATE_SUCCESS]
    [refund] = recorded.order.automatic_refunds(attempt.attempt_id)
    assert refund.amount_fen == AMOUNT


async def test_a_declined_payment_code_stays_final() -> None:
    """The payer shows a code: a decline on the allow-list ends the attempt, as before."""
    provider = ScriptedProvider([DECLINED])
    recorded = Recorded(SystemClock())
    attempt_id = recorded.start(Channel.WECHAT)
    playbook = load_config().with_settings(time_scale=SCALE).playbook(Channel.WECHAT)
    at = recorded.order.attempts[-1].created_at
    call = PayCall(attempt_id, "130000000000003333", AMOUNT, "SP01", "T01", "科目一", at)
    ticket = Ticket(attempt_id, AttemptState.SUBMITTED, at, call, AMOUNT)
    await asyncio.wait_for(
        AttemptDriver(provider, playbook, SystemClock(), recorded).run(ticket), 5
    )
    assert recorded.events == [E.DECLINED]
    assert recorded.order.attempts[-1].state is AttemptState.FAILED
