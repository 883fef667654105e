"""The providers' signed notifications over the real deployment: each sandbox posts them
to the listener, which hands them to the order's actor. A notification resolves a
payment or a refund the driver's own queries cannot see; a duplicate, a forgery or a
notification about an unknown trade changes nothing; one that arrives before windowpay
has recorded its own pay call's answer is applied once it has. Ledgers agree."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from prometheus_client import REGISTRY

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.sandbox.bank import SandboxBank, Trade, TradeState
from orchestrator.sandbox.common import Notification
from tests.e2e.conftest import Deployed
from tests.support import PROVIDER_CHANNELS, eventually

T = TypeVar("T")

PART = 1000
# A WeChat code payment (付款码支付) sends no notification: only queries tell; Alipay and
# UnionPay notify theirs. WeChat's payment notifications are those of QR payments
# (test_qr_notifications.py); every channel notifies its refunds.
NOTIFIED_CODE = tuple(c for c in PROVIDER_CHANNELS if c is not Channel.WECHAT)


def count(channel: Channel, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "windowpay_notifications_total", {"channel": channel.value, "outcome": outcome}
    )
    return value or 0.0


async def counted(channel: Channel, outcome: str, at_least: float) -> None:
    """The listener counts a notification once the actor has answered it, which may be
    just after the order's own event reached the caller."""
    await eventually(lambda: _value(count(channel, outcome)), lambda n: n >= at_least)


@contextmanager
def faulty(bank: SandboxBank, *operations: str) -> Iterator[None]:
    """The provider answers these operations "unavailable" while inside: only a
    notification can tell windowpay what happened."""
    bank.faults = set(operations)
    try:
        yield
    finally:
        bank.faults = set()


@contextmanager
def silent(bank: SandboxBank) -> Iterator[None]:
    bank.notifications = False
    try:
        yield
    finally:
        bank.notifications = True


async def post(deployed: Deployed, channel: Channel, sent: Notification) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            deployed.config.notify_url(channel),
            data=sent.body,
            headers={"Content-Type": sent.content_type, **sent.headers},
        ) as answer,
    ):
        return answer.status, await answer.text()


def received(sent: Notification, status: int, text: str) -> bool:
    return sent.delivered(status, text)


def notification(deployed: Deployed, channel: Channel, trade: Trade) -> Notification:
    made = deployed.sandboxes.gateways[channel].notification(trade, None)
    assert made is not None
    return made


def forged(channel: Channel, genuine: Notification) -> Notification:
    """The genuine notification with one field changed after it was signed."""
    if channel is Channel.WECHAT:
        body = genuine.body.replace("支付成功".encode(), "支付完成".encode())
        assert body != genuine.body
        return replace(genuine, body=body)
    fields = dict(parse_qsl(genuine.body.decode()))
    key = "total_amount" if channel is Channel.ALIPAY else "txnAmt"
    fields[key] = "1" if channel is Channel.UNIONPAY else "0.01"
    return replace(genuine, body=urlencode(fields).encode())


async def pay(deployed: Deployed, channel: Channel, ending: str) -> pb.Order:
    order = await deployed.create(deployed.window())
    return await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel, ending), timeout=30
    )


def agrees(deployed: Deployed, channel: Channel, order: pb.Order) -> Trade:
    """The sandbox ledger holds the order's payment as windowpay does."""
    [attempt] = order.attempts
    trade = deployed.trade(channel, attempt.attempt_id)
    assert trade is not None
    assert trade.state in (TradeState.SUCCESS, TradeState.REFUND)
    assert trade.amount_fen == order.amount_fen == attempt.amount_fen
    assert trade.trade_no == attempt.provider_trade_no
    return trade


@pytest.mark.parametrize("channel", NOTIFIED_CODE)
async def test_a_payment_confirmed_by_its_notification(
    deployed: Deployed, channel: Channel
) -> None:
    """The payer confirms (1111) while every query fails: the notification decides."""
    before = count(channel, "applied")
    with faulty(deployed.sandboxes.bank(channel), "query"):
        order = await pay(deployed, channel, "1111")
    assert order.state == pb.PAID, order
    assert order.attempts[0].state == pb.SUCCEEDED
    agrees(deployed, channel, order)
    await counted(channel, "applied", before + 1)


@pytest.mark.parametrize("channel", NOTIFIED_CODE)
async def test_with_the_notification_dropped_polling_finds_the_payment(
    deployed: Deployed, channel: Channel
) -> None:
    gateway = deployed.sandboxes.gateways[channel]
    with silent(gateway.bank):
        order = await pay(deployed, channel, "1111")
    assert order.state == pb.PAID, order
    agrees(deployed, channel, order)
    assert order.attempts[0].attempt_id not in {out_no for out_no, _ in gateway.sent}


async def test_a_wechat_code_payment_is_told_by_queries_alone(deployed: Deployed) -> None:
    """The payer confirms (1111): WeChat sends no notification of a code payment, the
    driver's queries find the payment."""
    gateway = deployed.sandboxes.gateways[Channel.WECHAT]
    order = await pay(deployed, Channel.WECHAT, "1111")
    assert order.state == pb.PAID, order
    trade = agrees(deployed, Channel.WECHAT, order)
    assert trade.notify is False
    assert order.attempts[0].attempt_id not in {out_no for out_no, _ in gateway.sent}


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_duplicate_notification_has_one_effect(
    deployed: Deployed, channel: Channel
) -> None:
    order = await pay(deployed, channel, "0000")
    assert order.state == pb.PAID, order
    trade = agrees(deployed, channel, order)
    sent = notification(deployed, channel, trade)
    # Alipay's second one is its notify_id again: answered received, not read twice;
    # the others' is read and found to change nothing. Either way, a duplicate.
    before = count(channel, "duplicate")
    for _ in range(2):
        assert received(sent, *await post(deployed, channel, sent))
    await counted(channel, "duplicate", before + 2)
    after = await deployed.get(order.order_id)
    assert after.version == order.version and after.state == pb.PAID


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_forged_notification_is_refused_and_changes_nothing(
    deployed: Deployed, channel: Channel
) -> None:
    """While the payer is still typing (2222: never confirms), a "paid" notification
    altered after signing is refused; the payment is reversed as if it never came."""
    order = await deployed.create(deployed.window())
    paying = asyncio.ensure_future(
        deployed.terminal_of_order(order).Pay(
            deployed.pay_request(order, channel, "2222"), timeout=30
        )
    )
    waiting = await eventually(
        lambda: deployed.get(order.order_id),
        lambda o: bool(o.attempts) and o.attempts[0].state == pb.AWAITING_PAYER,
    )
    trade = deployed.trade(channel, waiting.attempts[0].attempt_id)
    assert trade is not None
    as_if_paid = replace(trade, state=TradeState.SUCCESS, paid_at=trade.created_at)
    sent = forged(channel, notification(deployed, channel, as_if_paid))
    before = count(channel, "refused")
    status, text = await post(deployed, channel, sent)
    assert not received(sent, status, text)
    await counted(channel, "refused", before + 1)
    ended = await paying
    assert ended.state == pb.AWAITING_PAYMENT and ended.attempts[0].state == pb.REVERSED
    ledger = deployed.trade(channel, ended.attempts[0].attempt_id)
    assert ledger is not None and ledger.state in (TradeState.CLOSED, TradeState.REVOKED)


@pytest.mark.parametrize("channel", NOTIFIED_CODE)
async def test_a_notification_racing_the_actors_own_query(
    deployed: Deployed, channel: Channel
) -> None:
    """The payer confirms (1111) while the driver queries on its own: whichever comes
    first settles the payment, the other finds it settled."""
    outcomes = ("applied", "duplicate")
    before = sum(count(channel, o) for o in outcomes)
    order = await pay(deployed, channel, "1111")
    assert order.state == pb.PAID, order
    [attempt] = order.attempts
    assert attempt.state == pb.SUCCEEDED
    agrees(deployed, channel, order)
    await eventually(
        lambda: _value(sum(count(channel, o) for o in outcomes)), lambda n: n >= before + 1
    )


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_notification_about_an_unknown_trade_is_answered_received(
    deployed: Deployed, channel: Channel
) -> None:
    bank = deployed.sandboxes.bank(channel)
    stranger = bank.plant(f"ZZ{uuid.uuid4().hex[:18].upper()}", 4200)
    bank.drop(stranger.out_trade_no)  # signed, but in no ledger: the day reconciles
    sent = notification(deployed, channel, stranger)
    before = count(channel, "unknown")
    assert received(sent, *await post(deployed, channel, sent))
    await counted(channel, "unknown", before + 1)


@pytest.mark.parametrize("channel", [Channel.ALIPAY])
async def test_a_notification_before_windowpay_recorded_its_pay_call(
    deployed: Deployed, channel: Channel
) -> None:
    """5555: the provider takes the money and notifies at once, but its answer to the pay
    call never comes. The notification waits in the driver's inbox until the pay call
    has been recorded as unanswered, and is then applied: no query is needed."""
    before = count(channel, "applied")
    with faulty(deployed.sandboxes.bank(channel), "query"):
        order = await pay(deployed, channel, "5555")
    assert order.state == pb.PAID, order
    agrees(deployed, channel, order)
    await counted(channel, "applied", before + 1)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_refund_resolved_by_its_notification(deployed: Deployed, channel: Channel) -> None:
    """2323: the refund stays processing a while, and its own queries fail meanwhile:
    the provider's notification of the refund is what ends REFUND_PENDING."""
    order = await pay(deployed, channel, "2323")
    assert order.state == pb.PAID, order
    bank = deployed.sandboxes.bank(channel)
    attempt_id = order.attempts[0].attempt_id
    before = count(channel, "applied")
    refunding = asyncio.ensure_future(
        deployed.terminal_of_order(order).Refund(
            deployed.refund_request(order, PART, "考试取消"), timeout=30
        )
    )
    try:
        await eventually(lambda: _value(deployed.trade(channel, attempt_id)), _has_refund)
        with faulty(bank, "refund"):
            refunded = await refunding
    finally:
        refunding.cancel()
    assert refunded.state == pb.PARTIALLY_REFUNDED, refunded
    [refund] = refunded.refunds
    assert refund.state == pb.REFUND_SUCCEEDED and refund.amount_fen == PART
    trade = deployed.trade(channel, attempt_id)
    assert trade is not None
    assert [(r.amount_fen, r.state.value) for r in trade.refunds] == [(PART, "SUCCESS")]
    await counted(channel, "applied", before + 1)


def _has_refund(trade: Trade | None) -> bool:
    return trade is not None and bool(trade.refunds)


async def _value(value: T) -> T:
    return value
