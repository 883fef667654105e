"""QR payments and the providers' notifications together (issue 14), for every channel:
the payer scans, the sandbox notifies windowpay's listener, and the attempt's QR driver
takes the notification from its inbox. What each notification did for a trade is read
from the listener's own log line about it (its out_no and outcome), and what the
sandbox sent from its `sent` list. Ledgers agree with windowpay in every case."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.sandbox.bank import Trade, TradeState
from orchestrator.sandbox.common import Gateway, Notification, PayerBehaviour
from orchestrator.sandbox.payer import scan
from tests.e2e.conftest import Deployed
from tests.e2e.test_notifications import (
    agrees,
    count,
    counted,
    faulty,
    forged,
    notification,
    post,
    received,
)
from tests.e2e.test_qr import WITHIN, final, shown
from tests.support import PROVIDER_CHANNELS, eventually

LISTENER = "orchestrator.notify.listener"

T = TypeVar("T")


@pytest.fixture
def heard(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The listener's log lines: one per notification it handed to an actor."""
    caplog.set_level(logging.INFO, logger=LISTENER)
    return caplog


def outcomes(heard: pytest.LogCaptureFixture, out_no: str) -> list[str]:
    """What became of each notification about `out_no`, in the order they were answered."""
    return [
        str(getattr(r, "outcome", ""))
        for r in heard.records
        if r.name == LISTENER and getattr(r, "out_no", None) == out_no
    ]


async def heard_of(heard: pytest.LogCaptureFixture, out_no: str, accept: int) -> list[str]:
    """The outcomes about `out_no` once there are `accept` of them (the listener logs
    once the actor has answered, which may be just after the order changed)."""

    async def probe() -> list[str]:
        return outcomes(heard, out_no)

    return await eventually(probe, lambda seen: len(seen) >= accept, within=WITHIN)


def repeats(heard: pytest.LogCaptureFixture, channel: Channel) -> int:
    """The notifications of `channel` the listener answered as already seen (Alipay's
    notify_id), which it logs without their order."""
    return sum(
        1
        for record in heard.records
        if "notification repeated" in record.getMessage()
        and str(getattr(record, "channel", "")) in (channel.value, str(channel))
    )


def deliveries(gateway: Gateway[object], out_no: str) -> list[int]:
    """The HTTP status of every post of the sandbox's own notification about `out_no`."""
    return [status for no, status in gateway.sent if no == out_no]


@contextmanager
def tapped(gateway: Gateway[object]) -> Iterator[list[Notification]]:
    """Keep a copy of every notification the sandbox signs (to post it again, byte for
    byte); the sandbox still sends each one itself."""
    made: list[Notification] = []
    original = gateway.notification

    def keeping(trade: Trade, refund: object) -> Notification | None:
        sent = original(trade, refund)  # type: ignore[arg-type]
        if sent is not None:
            made.append(sent)
        return sent

    gateway.notification = keeping  # type: ignore[method-assign]
    try:
        yield made
    finally:
        del gateway.notification  # the class's own method again


def ledger(deployed: Deployed, channel: Channel, out_trade_no: str) -> Trade:
    trade = deployed.trade(channel, out_trade_no)
    assert trade is not None
    return trade


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_scanned_payment_resolved_by_its_notification(
    deployed: Deployed, channel: Channel, heard: pytest.LogCaptureFixture
) -> None:
    """Every query fails while the payer pays: only the notification can tell."""
    gateway = deployed.sandboxes.gateways[channel]
    order, _ = await shown(deployed, channel)
    attempt_id = order.attempts[0].attempt_id
    before = count(channel, "applied")
    with faulty(gateway.bank, "query"):
        await scan(order.attempts[0].qr_code_url, PayerBehaviour.PAY)
        paid = await final(deployed, order.order_id, pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
    assert paid.state == pb.PAID, paid
    agrees(deployed, channel, paid)
    assert await heard_of(heard, attempt_id, 1) == ["applied"]
    # the sandbox notes the post's status once the answer is back, after the listener
    # applied it and logged so: wait for the note
    [status] = await eventually(lambda: _now(deliveries(gateway, attempt_id)), bool)
    assert 200 <= status < 300  # delivered at the first post
    await counted(channel, "applied", before + 1)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_scanned_payment_without_its_notification_is_found_by_polling(
    deployed: Deployed, channel: Channel, heard: pytest.LogCaptureFixture
) -> None:
    gateway = deployed.sandboxes.gateways[channel]
    order, _ = await shown(deployed, channel)
    attempt_id = order.attempts[0].attempt_id
    scanned = await scan(order.attempts[0].qr_code_url, PayerBehaviour.PAY, notify=False)
    assert scanned["state"] == "SUCCESS" and scanned["notify"] is False
    paid = await final(deployed, order.order_id, pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
    assert paid.state == pb.PAID, paid
    agrees(deployed, channel, paid)
    assert deliveries(gateway, attempt_id) == []  # the sandbox never sent one
    assert outcomes(heard, attempt_id) == []  # nor did the listener count one about it


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_duplicate_qr_notification_has_one_effect(
    deployed: Deployed, channel: Channel, heard: pytest.LogCaptureFixture
) -> None:
    gateway = deployed.sandboxes.gateways[channel]
    order, _ = await shown(deployed, channel)
    attempt_id = order.attempts[0].attempt_id
    with tapped(gateway) as made:
        await scan(order.attempts[0].qr_code_url, PayerBehaviour.PAY)
        paid = await final(deployed, order.order_id, pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
        [first] = await heard_of(heard, attempt_id, 1)
    assert paid.state == pb.PAID, paid
    assert first in ("applied", "duplicate")  # the driver's own query may have been first
    [sent] = made
    repeated = count(channel, "duplicate")
    for _ in range(2):
        assert received(sent, *await post(deployed, channel, sent))
    if channel is Channel.ALIPAY:  # the same notify_id: answered received, not read again
        await counted(channel, "duplicate", repeated + 2)
        assert outcomes(heard, attempt_id) == [first]
    else:
        assert await heard_of(heard, attempt_id, 3) == [first, "duplicate", "duplicate"]
    after = await deployed.get(order.order_id)
    assert after.version == paid.version and after.state == pb.PAID
    assert len(after.attempts) == 1 and not after.refunds
    trade = agrees(deployed, channel, after)
    assert trade.state is TradeState.SUCCESS and not trade.refunds


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_forged_or_mismatched_qr_notification_changes_nothing(
    deployed: Deployed, channel: Channel, heard: pytest.LogCaptureFixture
) -> None:
    """While the code waits for its payer, a "paid" notification altered after signing
    is refused, and so is a genuinely signed one for another amount; the code is then
    paid by its payer as if neither had come."""
    order, _ = await shown(deployed, channel)
    attempt_id = order.attempts[0].attempt_id
    waiting = ledger(deployed, channel, attempt_id)
    assert waiting.state is TradeState.NOTPAY
    as_if_paid = replace(waiting, state=TradeState.SUCCESS, paid_at=waiting.created_at)
    before = count(channel, "refused")
    sent = forged(channel, notification(deployed, channel, as_if_paid))
    assert not received(sent, *await post(deployed, channel, sent))
    await counted(channel, "refused", before + 1)
    other_amount = replace(as_if_paid, amount_fen=as_if_paid.amount_fen - 1)
    sent = notification(deployed, channel, other_amount)
    assert not received(sent, *await post(deployed, channel, sent))
    assert await heard_of(heard, attempt_id, 1) == ["mismatch"]  # the forgery never got this far
    unchanged = await deployed.get(order.order_id)
    assert unchanged.version == order.version, unchanged
    assert unchanged.attempts[0].state == pb.AWAITING_PAYER
    assert ledger(deployed, channel, attempt_id).state is TradeState.NOTPAY
    await scan(order.attempts[0].qr_code_url, PayerBehaviour.PAY)
    paid = await final(deployed, order.order_id, pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
    assert paid.state == pb.PAID, paid
    agrees(deployed, channel, paid)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_qr_notification_racing_the_drivers_own_query(
    deployed: Deployed, channel: Channel, heard: pytest.LogCaptureFixture
) -> None:
    """The payer pays while the driver queries every few hundred milliseconds; the
    sandbox's notification and a second copy posted at once race those queries. The
    first to reach the driver settles the payment, the others find it settled."""
    gateway = deployed.sandboxes.gateways[channel]
    order, _ = await shown(deployed, channel)
    attempt_id = order.attempts[0].attempt_id
    with tapped(gateway) as made:
        await scan(order.attempts[0].qr_code_url, PayerBehaviour.PAY)
    [sent] = made
    again = asyncio.ensure_future(post(deployed, channel, sent))
    paid = await final(deployed, order.order_id, pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
    assert received(sent, *await again)
    assert paid.state == pb.PAID, paid
    if channel is Channel.ALIPAY:
        # The same notify_id twice: a copy verified after the listener remembered the
        # first is answered "received" there and never reaches the actor (logged as
        # repeated, with no order); copies verified together both reach it. Either way,
        # each of the two is answered once.
        seen, again_seen = await eventually(
            lambda: _now((outcomes(heard, attempt_id), repeats(heard, channel))),
            lambda both: len(both[0]) + both[1] >= 2,
            within=WITHIN,
        )
        assert len(seen) >= 1, (seen, again_seen)
    else:
        seen = await heard_of(heard, attempt_id, 2)
    assert set(seen) <= {"applied", "duplicate"} and seen.count("applied") <= 1, seen
    await eventually(
        lambda: _now(deliveries(gateway, attempt_id)), lambda s: any(200 <= n < 300 for n in s)
    )
    after = await deployed.get(order.order_id)
    assert after.version == paid.version and len(after.attempts) == 1 and not after.refunds
    trade = agrees(deployed, channel, after)
    assert trade.state is TradeState.SUCCESS and not trade.refunds


# UnionPay cannot close a 申码 code: it ends by its payTimeout, and windowpay's "close" is
# a query that confirms it after that time. A payment that comes first stands (PAID once,
# tests/e2e/test_qr.py); there is no close for a payer to come after.
CLOSING_CHANNELS = (Channel.WECHAT, Channel.ALIPAY)


@pytest.mark.parametrize("channel", CLOSING_CHANNELS)
async def test_a_qr_payment_after_the_close_is_refunded_once_by_its_notification(
    deployed: Deployed, channel: Channel, heard: pytest.LogCaptureFixture
) -> None:
    """The payer pays just after the code was closed. From the close on every query
    fails (the close itself may query: UnionPay's does), so the notification alone finds
    the late success; it is refunded once, a resend of the notification is a duplicate,
    and the order is paid another way."""
    gateway = deployed.sandboxes.gateways[channel]
    order, _ = await shown(deployed, channel)
    attempt_id = order.attempts[0].attempt_id
    with tapped(gateway) as made:
        await scan(order.attempts[0].qr_code_url, PayerBehaviour.AFTER_CLOSE)
        # The after-close payer pays a fifth of a second after the bank's close.
        await eventually(
            lambda: _now(ledger(deployed, channel, attempt_id).state),
            lambda state: state is not TradeState.USERPAYING,
            within=WITHIN,
            every=0.01,
        )
        with faulty(gateway.bank, "query"):
            healed = await final(
                deployed, order.order_id, pb.LATE_SUCCESS_REFUNDED, pb.SUCCEEDED, pb.FAILED
            )
            assert await heard_of(heard, attempt_id, 1) == ["applied"]
    assert healed.attempts[0].state == pb.LATE_SUCCESS_REFUNDED, healed
    assert healed.state == pb.AWAITING_PAYMENT  # the order itself was never paid
    paid_notice = made[0]  # the payment's; the refund's follows it
    repeated = count(channel, "duplicate")
    assert received(paid_notice, *await post(deployed, channel, paid_notice))
    if channel is Channel.ALIPAY:  # the same notify_id: answered received, not read again
        await counted(channel, "duplicate", repeated + 1)
        assert outcomes(heard, attempt_id) == ["applied"]
    else:
        assert await heard_of(heard, attempt_id, 2) == ["applied", "duplicate"]
    after = await deployed.get(order.order_id)
    assert after.version == healed.version
    [refund] = after.refunds
    assert refund.automatic and refund.state == pb.REFUND_SUCCEEDED
    assert refund.amount_fen == after.amount_fen
    trade = ledger(deployed, channel, attempt_id)
    assert trade.state is TradeState.REFUND
    assert trade.trade_no == healed.attempts[0].provider_trade_no
    assert [(r.amount_fen, r.state.value) for r in trade.refunds] == [(after.amount_fen, "SUCCESS")]
    paid = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel), timeout=30
    )
    assert paid.state == pb.PAID
    assert [a.state for a in paid.attempts] == [pb.LATE_SUCCESS_REFUNDED, pb.SUCCEEDED]


async def _now(value: T) -> T:
    return value
