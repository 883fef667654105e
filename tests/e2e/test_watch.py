"""WatchWindow: the window's open order appears as soon as it is created, then every
change, in version order."""

import asyncio

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed


async def test_a_terminal_sees_its_window_orders_and_every_change(deployed: Deployed) -> None:
    window = deployed.window()
    terminal = deployed.terminal_of(window)
    already = await deployed.create(window)
    stream = deployed.terminal_for(terminal).WatchWindow(
        pb.WatchWindowRequest(terminal_id=terminal)
    )
    seen: list[pb.Order] = []
    first = asyncio.Event()

    async def read() -> None:
        async for order in stream:
            seen.append(order)
            if order.order_id == already.order_id:
                first.set()
            if order.order_id != already.order_id and order.state == pb.PAID:
                return

    reader = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), 10)  # the window's open orders are shown first
    assert all(o.state in (pb.AWAITING_PAYMENT, pb.PAYING) for o in seen)
    fresh = await deployed.create(window)
    await deployed.terminal_of_order(fresh).Pay(
        deployed.pay_request(fresh, Channel.WECHAT, "1111"), timeout=30
    )
    await asyncio.wait_for(reader, 10)
    stream.cancel()
    states = [pb.OrderState.Name(o.state) for o in seen if o.order_id == fresh.order_id]
    assert states[0] == "AWAITING_PAYMENT"
    assert states[-1] == "PAID"
    assert "PAYING" in states
    versions = [o.version for o in seen if o.order_id == fresh.order_id]
    assert versions == sorted(set(versions))
    attempt_states = [
        o.attempts[0].state for o in seen if o.order_id == fresh.order_id and o.attempts
    ]
    assert pb.AWAITING_PAYER in attempt_states


async def test_a_terminal_may_only_watch_its_own_window(deployed: Deployed) -> None:
    windows = sorted(deployed.config.deployment.window_service_point)
    stream = deployed.terminal_for(deployed.terminal_of(windows[0])).WatchWindow(
        pb.WatchWindowRequest(terminal_id=deployed.terminal_of(windows[0]), window_id=windows[1])
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
