"""Refunds over gRPC of orders that have left Redis after the retention: the actor
recalls them from the record and the usual checks apply (the supervisor, the refundable
amount, a cash refund only at the order's window); the record and Redis agree
afterwards."""

from __future__ import annotations

import grpc
import psycopg
import pytest
from redis.asyncio import Redis

from orchestrator.domain import ids
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.store import keys
from tests.e2e.conftest import Deployed
from tests.support import eventually


async def paid(deployed: Deployed, channel: Channel) -> pb.Order:
    order = await deployed.create(deployed.window())
    answer = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel), timeout=30
    )
    assert answer.state == pb.PAID
    return answer


async def record_version(deployed: Deployed, order_id: str) -> tuple[int, list[int]]:
    async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
        row = await (
            await conn.execute("SELECT version FROM orders WHERE order_id = %s", (order_id,))
        ).fetchone()
        journal = await conn.execute(
            "SELECT version FROM journal WHERE order_id = %s ORDER BY version", (order_id,)
        )
        versions = [v for (v,) in await journal.fetchall()]
    return (int(row[0]) if row else 0), versions


async def leaves_redis(deployed: Deployed, order: pb.Order) -> None:
    """Once drained final its keys carry the retention; let it pass at once."""
    redis = Redis.from_url(deployed.redis_url)
    try:
        sp = ids.service_point_of(order.order_id)
        names = [keys.order(sp, order.order_id), keys.journal(sp, order.order_id)]
        await eventually(lambda: redis.pttl(names[0]), lambda ttl: ttl > 0, within=30)
        assert await redis.pttl(names[1]) > 0
        await redis.delete(*names)
    finally:
        await redis.aclose()


async def refund(deployed: Deployed, order: pb.Order, amount: int, **change: str) -> pb.Order:
    request = deployed.refund_request(order, amount, "考试取消")
    for name, value in change.items():
        setattr(request, name, value)
    terminal = deployed.terminal_for(request.terminal_id)
    answer: pb.Order = await terminal.Refund(request, timeout=30)
    return answer


async def refused(
    deployed: Deployed, order: pb.Order, amount: int, **change: str
) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await refund(deployed, order, amount, **change)
    code: grpc.StatusCode = info.value.code()
    return code


async def test_an_order_gone_from_redis_is_refunded_twice_within_what_was_paid(
    deployed: Deployed,
) -> None:
    order = await paid(deployed, Channel.WECHAT)
    await leaves_redis(deployed, order)
    first = await refund(deployed, order, 1000)
    assert first.state == pb.PARTIALLY_REFUNDED and first.refunded_fen == 1000
    # Approved by the supervisor of the order's point with their PIN (a wrong PIN is not
    # tried here: the session's other refund tests share the PIN counters).
    assert first.refunds[0].supervisor_id == deployed.supervisor_of(order)[0]

    await leaves_redis(deployed, order)
    second = await refund(deployed, order, 2000)
    assert second.refunded_fen == 3000 and second.version > first.version
    rest = order.amount_fen - 3000
    await leaves_redis(deployed, order)
    assert await refused(deployed, order, rest + 1) == grpc.StatusCode.FAILED_PRECONDITION
    trade = deployed.trade(Channel.WECHAT, order.attempts[0].attempt_id)
    assert trade is not None and trade.refunded_fen == 3000

    # The record has every version, the journal without a gap, as Redis does.
    live = await deployed.get(order.order_id)
    recorded = await eventually(
        lambda: record_version(deployed, order.order_id), lambda r: r[0] == live.version
    )
    assert recorded[1] == list(range(1, live.version + 1))
    assert [r.amount_fen for r in live.refunds] == [1000, 2000]


async def test_a_cash_order_gone_from_redis_is_refunded_only_at_its_window(
    deployed: Deployed,
) -> None:
    order = await paid(deployed, Channel.CASH)
    await leaves_redis(deployed, order)
    config = deployed.config.deployment
    own = deployed.terminal_of(order.window_id)
    other = next(
        t
        for t, w in config.terminal_window.items()
        if t != own and config.window_service_point[w] == order.service_point_id
    )
    assert await refused(deployed, order, 500, terminal_id=other) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    done = await refund(deployed, order, 500)
    assert done.state == pb.PARTIALLY_REFUNDED and done.refunded_fen == 500


async def test_an_unknown_order_is_still_not_found(deployed: Deployed) -> None:
    order = await paid(deployed, Channel.CASH)
    unknown = pb.Order(
        order_id=f"{order.service_point_id}-{'Z' * 14}", window_id=order.window_id,
        service_point_id=order.service_point_id,
    )  # fmt: skip
    assert await refused(deployed, unknown, 100) == grpc.StatusCode.NOT_FOUND
