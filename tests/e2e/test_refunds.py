"""Refunds over gRPC and real HTTP: partial and full on every channel, concurrent
requests that never refund more than was paid, and a late success refunded on its own."""

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import PROVIDER_CHANNELS, eventually


async def paid(deployed: Deployed, channel: Channel) -> pb.Order:
    order = await deployed.create(deployed.window())
    answer = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel), timeout=30
    )
    assert answer.state == pb.PAID
    return answer


def refund(deployed: Deployed, order: pb.Order, amount: int) -> pb.RefundRequest:
    return deployed.refund_request(order, amount, "考试取消")


@pytest.mark.parametrize("channel", [*PROVIDER_CHANNELS, Channel.CASH])
async def test_partial_then_full_refund(deployed: Deployed, channel: Channel) -> None:
    order = await paid(deployed, channel)
    part = await deployed.terminal_of_order(order).Refund(refund(deployed, order, 1000), timeout=30)
    assert part.state == pb.PARTIALLY_REFUNDED and part.refunded_fen == 1000
    assert part.refunds[0].state == pb.REFUND_SUCCEEDED
    rest = await deployed.terminal_of_order(order).Refund(
        refund(deployed, order, order.amount_fen - 1000), timeout=30
    )
    assert rest.state == pb.REFUNDED and rest.refunded_fen == order.amount_fen
    if channel is not Channel.CASH:
        trade = deployed.trade(channel, order.attempts[0].attempt_id)
        assert trade is not None and trade.refunded_fen == order.amount_fen
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await deployed.terminal_of_order(order).Refund(refund(deployed, order, 1), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_concurrent_refunds_never_exceed_the_payment(deployed: Deployed) -> None:
    """Five refunds at once, from two windows of the order's point (a terminal has three
    PIN attempts in flight at most, a supervisor five): each is approved, one is made,
    and the other four find the amount already reserved."""
    order = await paid(deployed, Channel.WECHAT)
    share = order.amount_fen // 2 + 1  # only one of these fits
    own = deployed.terminal_of(order.window_id)
    other = next(
        t
        for t, w in deployed.config.deployment.terminal_window.items()
        if t != own and deployed.config.deployment.window_service_point[w] == order.service_point_id
    )
    calls = []
    for n in range(5):
        terminal = own if n < 3 else other
        request = refund(deployed, order, share)
        request.terminal_id = terminal
        calls.append(deployed.terminal_for(terminal).Refund(request, timeout=30))
    results = await asyncio.gather(*calls, return_exceptions=True)
    done = [r for r in results if isinstance(r, pb.Order)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(done) == 1 and len(refused) == 4
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    final = await deployed.get(order.order_id)
    assert final.refunded_fen == share
    trade = deployed.trade(Channel.WECHAT, order.attempts[0].attempt_id)
    assert trade is not None and trade.refunded_fen == share


async def test_bad_refunds(deployed: Deployed) -> None:
    order = await paid(deployed, Channel.ALIPAY)
    for change, status in [
        ({"amount_fen": 0}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"supervisor_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"reason": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"terminal_id": "NOPE"}, grpc.StatusCode.PERMISSION_DENIED),
    ]:
        request = refund(deployed, order, 100)
        for name, value in change.items():
            setattr(request, name, value)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await deployed.terminal_of_order(order).Refund(request, timeout=10)
        assert info.value.code() == status, change
    assert (await deployed.get(order.order_id)).refunded_fen == 0


async def test_a_late_success_is_refunded_automatically(deployed: Deployed) -> None:
    bank = deployed.sandboxes.bank(Channel.WECHAT)
    order = await deployed.create(deployed.window())
    # Reversals do not get through until the payer has confirmed: otherwise the
    # follow-up's own retry could close the trade first, however fast the machine.
    bank.faults = {"reverse"}
    try:
        first = await deployed.terminal_of_order(order).Pay(
            deployed.pay_request(order, Channel.WECHAT, "2222"), timeout=30
        )
        attempt = first.attempts[0]
        assert (attempt.state, attempt.follow_up) == (pb.FAILED, True)
        assert first.state == pb.AWAITING_PAYMENT
        again = await deployed.terminal_of_order(order).Pay(
            deployed.pay_request(order, Channel.ALIPAY), timeout=30
        )
        assert again.state == pb.PAID
        bank.confirm(attempt.attempt_id)  # the first payment went through after all
    finally:
        bank.faults = set()
    final = await eventually(
        lambda: deployed.get(order.order_id),
        lambda o: o.attempts[0].state == pb.LATE_SUCCESS_REFUNDED,
    )
    [auto] = final.refunds
    assert auto.automatic and auto.state == pb.REFUND_SUCCEEDED
    assert auto.amount_fen == order.amount_fen and auto.reason
    assert final.state == pb.PAID and final.refunded_fen == 0
    trade = deployed.trade(Channel.WECHAT, attempt.attempt_id)
    assert trade is not None and trade.refunded_fen == order.amount_fen


async def test_cash_is_refunded_from_the_drawer_that_took_it(deployed: Deployed) -> None:
    """Two windows of one point: window A's cash asked back at window B is refused and
    stores nothing; at A it is paid back, and the day's settlement books it to A."""
    window = deployed.window()
    sp = deployed.config.deployment.window_service_point[window]
    other = next(
        w
        for w, point in sorted(deployed.config.deployment.window_service_point.items())
        if point == sp and w != window
    )
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()

    async def figures() -> dict[tuple[str, int], tuple[int, int, int, int]]:
        answer = await deployed.backoffice.GetSettlement(
            pb.SettlementRequest(date=today, service_point_id=sp)
        )
        return {
            (r.window_id, r.channel): (r.payments, r.payments_fen, r.refunds, r.refunds_fen)
            for r in answer.rows
            if r.window_id in (window, other)
        }

    before = await figures()
    order = await deployed.create(window)
    order = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.CASH), timeout=30
    )
    elsewhere = refund(deployed, order, 500)
    elsewhere.terminal_id = deployed.terminal_of(other)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await deployed.terminal_for(elsewhere.terminal_id).Refund(elsewhere, timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"paid in cash at window {window}" in (info.value.details() or "")
    unchanged = await deployed.get(order.order_id)
    assert (unchanged.version, unchanged.refunded_fen) == (order.version, 0)

    back = await deployed.terminal_of_order(order).Refund(refund(deployed, order, 500), timeout=30)
    assert back.refunded_fen == 500
    after = await figures()

    def delta(key: tuple[str, int]) -> tuple[int, ...]:
        old = before.get(key, (0, 0, 0, 0))
        return tuple(a - b for a, b in zip(after.get(key, (0, 0, 0, 0)), old, strict=True))

    assert delta((window, pb.CASH)) == (1, order.amount_fen, 1, 500)
    assert delta((other, pb.CASH)) == (0, 0, 0, 0)
