"""Refunds over gRPC and real HTTP: partial and full on every channel, concurrent
requests that never refund more than was paid, and a late success refunded on its own."""

import asyncio

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
    order = await paid(deployed, Channel.WECHAT)
    share = order.amount_fen // 2 + 1  # only one of these fits
    calls = [
        deployed.terminal_of_order(order).Refund(refund(deployed, order, share), timeout=30)
        for _ in range(6)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    done = [r for r in results if isinstance(r, pb.Order)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(done) == 1 and len(refused) == 5
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
