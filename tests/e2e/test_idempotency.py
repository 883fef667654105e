"""Duplicates over gRPC: the first answer is replayed and the effect happens once."""

import asyncio
import uuid

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed


def create_request(deployed: Deployed, window: str) -> pb.CreateOrderRequest:
    return pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex,
        business_no=f"B-{uuid.uuid4().hex[:10]}",
        window_id=window,
        payer_name="赵六",
        lines=[pb.OrderLine(fee_code="EXM-K1", quantity=1)],
    )


async def test_a_sequential_duplicate_create_returns_the_first_answer(deployed: Deployed) -> None:
    request = create_request(deployed, deployed.window())
    first = await deployed.business.CreateOrder(request, timeout=10)
    second = await deployed.business.CreateOrder(request, timeout=10)
    assert second == first


async def test_concurrent_duplicates_create_one_order(deployed: Deployed) -> None:
    request = create_request(deployed, deployed.window())
    answers = await asyncio.gather(
        *(deployed.business.CreateOrder(request, timeout=10) for _ in range(20))
    )
    assert len({a.order_id for a in answers}) == 1
    assert all(a == answers[0] for a in answers)


async def test_concurrent_duplicate_payments_charge_once(deployed: Deployed) -> None:
    order = await deployed.create(deployed.window())
    request = deployed.pay_request(order, Channel.ALIPAY, "1111")
    answers = await asyncio.gather(
        *(deployed.terminal_for(request.terminal_id).Pay(request, timeout=30) for _ in range(10))
    )
    assert {a.state for a in answers} == {pb.PAID}
    final = await deployed.get(order.order_id)
    assert len(final.attempts) == 1
    trade = deployed.trade(Channel.ALIPAY, final.attempts[0].attempt_id)
    assert trade.state.value == "SUCCESS"
    replay = await deployed.terminal_for(request.terminal_id).Pay(request, timeout=10)
    assert replay == answers[0]


async def test_a_key_reused_with_other_parameters_is_refused(deployed: Deployed) -> None:
    request = create_request(deployed, deployed.window())
    await deployed.business.CreateOrder(request, timeout=10)
    request.lines[0].quantity = 2
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await deployed.business.CreateOrder(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert request.request_id in (info.value.details() or "")
