"""QR attempts (the payer scans) in the shared engine, against the in-process sandbox,
and the one function that turns a provider's answer into an attempt event."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from orchestrator.channels.inprocess import QR_SCHEME, SandboxProvider
from orchestrator.config import load_config
from orchestrator.domain.errors import FailedPrecondition, InvalidArgument
from orchestrator.domain.order import Attempt, Order
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState, PayMode
from orchestrator.providers.engine import (
    Observation,
    SystemClock,
    Ticket,
    trade_observation,
)
from orchestrator.providers.port import QrCall, TradeAnswer, TradeStatus
from orchestrator.providers.qr_driver import QrDriver
from orchestrator.sandbox.bank import SandboxBank, Timing, TradeState
from tests.support import LINES, PROVIDER_CHANNELS, Recorded, eventually

SCALE = 0.01
CONFIG = load_config().with_settings(time_scale=SCALE)
AMOUNT = 8000
A, E, S = AttemptState, AttemptEvent, TradeStatus


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        (A.SUBMITTED, S.PAID, E.PAID),
        (A.AWAITING_PAYER, S.PAID, E.PAID),
        (A.UNKNOWN, S.PAID, E.PAID),
        (A.REVERSING, S.PAID, E.PAID),  # a QR close lost the race: the payment stands
        (A.AWAITING_PAYER, S.DECLINED, E.DECLINED),
        (A.AWAITING_PAYER, S.CLOSED, E.DECLINED),
        (A.REVERSING, S.CLOSED, None),  # the close itself decides
        (A.SUBMITTED, S.CONFIRMING, E.PAYER_CONFIRMING),
        (A.UNKNOWN, S.CONFIRMING, E.PAYER_CONFIRMING),
        (A.AWAITING_PAYER, S.CONFIRMING, None),
        (A.AWAITING_PAYER, S.NOT_FOUND, None),  # Alipay: not scanned yet
        (A.REVERSED, S.PAID, E.LATE_SUCCESS),
        (A.FAILED, S.PAID, E.LATE_SUCCESS),
        (A.REVERSED, S.CLOSED, None),
        (A.SUCCEEDED, S.PAID, None),  # a duplicate has no second effect
        (A.LATE_SUCCESS_REFUNDED, S.PAID, None),
    ],
)
def test_what_an_answer_means_for_an_attempt(
    state: AttemptState, status: TradeStatus, expected: AttemptEvent | None
) -> None:
    observation = trade_observation(state, TradeAnswer(status, "T1"))
    assert (observation.event if observation else None) is expected
    if isinstance(observation, Observation) and observation.event is E.PAID:
        assert observation.trade_no == "T1"


def driver_for(channel: Channel, bank: SandboxBank, recorded: Recorded) -> QrDriver:
    playbook = replace(CONFIG.playbook(channel), qr_follow_up_s=1.0)
    return QrDriver(SandboxProvider(channel, bank), playbook, SystemClock(), recorded)


def qr_ticket(recorded: Recorded, expiry_s: float = 1.0) -> Ticket:
    attempt = recorded.order.attempts[-1]
    at = attempt.created_at
    call = QrCall(
        attempt.attempt_id, AMOUNT, "SP01", "T01", "科目一", at, at + int(expiry_s * 1000)
    )
    return Ticket(attempt.attempt_id, attempt.state, at, None, AMOUNT, qr_call=call)


async def code_made(recorded: Recorded) -> Attempt:
    attempt = recorded.order.attempts[-1]
    await eventually(lambda: asyncio.sleep(0, attempt.qr_code_url), bool, within=5)
    return attempt


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_scanned_and_paid_code_pays_the_order(channel: Channel) -> None:
    bank = SandboxBank(channel.value, Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    recorded.start(channel, PayMode.PAYER_SCANS_QR)
    running = asyncio.create_task(driver_for(channel, bank, recorded).run(qr_ticket(recorded, 5)))
    attempt = await code_made(recorded)
    assert attempt.qr_code_url.startswith(QR_SCHEME)
    assert attempt.state is AttemptState.AWAITING_PAYER and attempt.qr_expires_at
    bank.scan(attempt.attempt_id)
    paid = bank.pay_scanned(attempt.attempt_id)
    await asyncio.wait_for(running, 5)
    assert paid is not None and attempt.provider_trade_no == paid.trade_no
    assert (recorded.order.state, attempt.state) == (OrderState.PAID, AttemptState.SUCCEEDED)


async def test_an_expired_code_is_closed_and_the_order_payable_again() -> None:
    bank = SandboxBank("WECHAT", Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    recorded.start(Channel.WECHAT, PayMode.PAYER_SCANS_QR)
    await asyncio.wait_for(driver_for(Channel.WECHAT, bank, recorded).run(qr_ticket(recorded)), 10)
    attempt = recorded.order.attempts[-1]
    assert recorded.events == [
        E.QR_CODE_READY, E.REVERSAL_STARTED, E.REVERSED, E.FOLLOW_UP_CLEARED
    ]  # fmt: skip
    assert attempt.state is AttemptState.REVERSED and not attempt.follow_up
    assert recorded.order.state is OrderState.AWAITING_PAYMENT
    trade = bank.trade(attempt.attempt_id)
    assert trade is not None and trade.state is TradeState.CLOSED


async def test_an_unclear_close_is_asked_again_until_confirmed() -> None:
    bank = SandboxBank("ALIPAY", Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    recorded.start(Channel.ALIPAY, PayMode.PAYER_SCANS_QR)
    bank.faults = {"reverse"}  # every close answers "unavailable" for now
    running = asyncio.create_task(
        driver_for(Channel.ALIPAY, bank, recorded).run(qr_ticket(recorded, 0.2))
    )
    await eventually(lambda: asyncio.sleep(0, recorded.events), lambda e: E.REVERSAL_STARTED in e)
    await asyncio.sleep(0.3)
    assert recorded.order.attempts[-1].state is AttemptState.REVERSING  # not final yet
    assert recorded.order.state is OrderState.PAYING
    bank.faults = set()
    await asyncio.wait_for(running, 10)
    assert recorded.order.attempts[-1].state is AttemptState.REVERSED


async def test_a_payment_after_the_close_is_a_late_success() -> None:
    bank = SandboxBank("UNIONPAY", Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    recorded.start(Channel.UNIONPAY, PayMode.PAYER_SCANS_QR)
    running = asyncio.create_task(
        driver_for(Channel.UNIONPAY, bank, recorded).run(qr_ticket(recorded, 0.3))
    )
    attempt = await code_made(recorded)
    bank.scan(attempt.attempt_id)
    await eventually(lambda: asyncio.sleep(0, attempt.state), lambda s: s is A.REVERSED)
    bank.pay_scanned(attempt.attempt_id, even_if_closed=True)
    await asyncio.wait_for(running, 10)
    assert recorded.events[-1] is E.LATE_SUCCESS
    [refund] = recorded.order.automatic_refunds(attempt.attempt_id)
    assert refund.amount_fen == AMOUNT
    assert recorded.order.state is OrderState.AWAITING_PAYMENT


async def test_a_close_that_finds_the_trade_paid_keeps_the_payment() -> None:
    bank = SandboxBank("WECHAT", Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    attempt_id = recorded.start(Channel.WECHAT, PayMode.PAYER_SCANS_QR)
    provider = SandboxProvider(Channel.WECHAT, bank)
    ticket = qr_ticket(recorded, 60)
    assert ticket.qr_call is not None
    made = await provider.create_qr(ticket.qr_call)
    recorded.order.record_attempt(
        attempt_id, E.QR_CODE_READY, 0, qr_code_url=made.code_url, qr_expires_at=1
    )
    recorded.order.record_attempt(attempt_id, E.REVERSAL_STARTED, 0, reason="expired")
    bank.pay_scanned(attempt_id)
    resumed = replace(ticket, state=AttemptState.REVERSING, qr_call=None)
    await asyncio.wait_for(driver_for(Channel.WECHAT, bank, recorded).run(resumed), 5)
    assert recorded.order.state is OrderState.PAID
    assert recorded.order.attempts[-1].state is AttemptState.SUCCEEDED


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_payment_that_beat_the_close_is_told_by_its_notification(
    channel: Channel,
) -> None:
    """The close finds the trade paid (or, UnionPay, cannot close without a query) while
    every query fails: the provider's notification in the inbox says the payment stands,
    long before the close would be given up and the payment taken for a late success."""
    bank = SandboxBank(channel.value, Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    attempt_id = recorded.start(channel, PayMode.PAYER_SCANS_QR)
    provider = SandboxProvider(channel, bank)
    ticket = qr_ticket(recorded, 60)
    assert ticket.qr_call is not None
    made = await provider.create_qr(ticket.qr_call)
    recorded.order.record_attempt(
        attempt_id, E.QR_CODE_READY, 0, qr_code_url=made.code_url, qr_expires_at=1
    )
    recorded.order.record_attempt(attempt_id, E.REVERSAL_STARTED, 0, reason="expired")
    paid = bank.pay_scanned(attempt_id)
    assert paid is not None
    bank.faults = {"query"}
    playbook = replace(CONFIG.playbook(channel), reverse_give_up_after_s=3600.0)
    driver = QrDriver(provider, playbook, SystemClock(), recorded)
    resumed = replace(ticket, state=AttemptState.REVERSING, qr_call=None)
    running = asyncio.create_task(driver.run(resumed))
    await asyncio.sleep(0.05)  # the driver is asking its close
    applied = driver.inbox.put(TradeAnswer(TradeStatus.PAID, paid.trade_no, "notified"))
    await asyncio.wait_for(running, 5)
    assert await applied
    assert recorded.events == [E.PAID]
    assert recorded.order.state is OrderState.PAID
    attempt = recorded.order.attempts[-1]
    assert (attempt.state, attempt.provider_trade_no) == (AttemptState.SUCCEEDED, paid.trade_no)


async def test_resumed_before_the_code_was_known_the_trade_is_closed() -> None:
    bank = SandboxBank("WECHAT", Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    recorded.start(Channel.WECHAT, PayMode.PAYER_SCANS_QR)
    resumed = replace(qr_ticket(recorded), qr_call=None)
    await asyncio.wait_for(driver_for(Channel.WECHAT, bank, recorded).run(resumed), 10)
    attempt = recorded.order.attempts[-1]
    assert attempt.state is AttemptState.REVERSED
    trade = bank.trade(attempt.attempt_id)
    assert trade is not None and trade.state is TradeState.CLOSED  # can never be paid


async def test_a_refused_code_request_fails_the_attempt() -> None:
    bank = SandboxBank("WECHAT", Timing(time_scale=SCALE))
    recorded = Recorded(SystemClock())
    attempt_id = recorded.start(Channel.WECHAT, PayMode.PAYER_SCANS_QR)
    bank.plant(attempt_id, AMOUNT)  # the number is taken by a trade that is no QR code
    await asyncio.wait_for(driver_for(Channel.WECHAT, bank, recorded).run(qr_ticket(recorded)), 5)
    assert recorded.events == [E.DECLINED]
    assert recorded.order.state is OrderState.AWAITING_PAYMENT


def new_order() -> Order:
    order, _ = Order.create(
        order_id="SP01-Q", business_no="B", service_point_id="SP01", window_id="W01",
        payer_name="p", lines=LINES, catalog_version="v", now=0, expires_at=10**9,
    )  # fmt: skip
    return order


def test_cash_cannot_be_paid_by_a_qr_code() -> None:
    with pytest.raises(InvalidArgument, match="QR"):
        new_order().start_attempt(
            attempt_id="A1", channel=Channel.CASH, terminal_id="T", request_id="r", now=1,
            cash_received_fen=8000, mode=PayMode.PAYER_SCANS_QR,
        )  # fmt: skip


def test_a_qr_code_is_recorded_only_with_its_url_and_expiry() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.ALIPAY, terminal_id="T", request_id="r", now=1,
        mode=PayMode.PAYER_SCANS_QR,
    )  # fmt: skip
    with pytest.raises(FailedPrecondition, match="URL and expiry"):
        order.record_attempt("A1", E.QR_CODE_READY, 2, qr_code_url="http://x/_sandbox/qr/t")
    order.record_attempt("A1", E.QR_CODE_READY, 2, qr_code_url="http://x/q", qr_expires_at=9)
    again = Order.from_record(order.to_record()).attempt("A1")
    assert (again.mode, again.qr_code_url, again.qr_expires_at) == (
        PayMode.PAYER_SCANS_QR, "http://x/q", 9
    )  # fmt: skip


def test_records_from_before_qr_payments_read_as_payment_codes() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T", request_id="r", now=1
    )
    record = order.to_record()
    for key in ("mode", "qr_code_url", "qr_expires_at"):
        del record["attempts"][0][key]
    attempt = Order.from_record(record).attempt("A1")
    assert attempt.mode is PayMode.PAYER_PRESENTS_CODE and not attempt.scans_qr
