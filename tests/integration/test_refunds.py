"""Refunds and late successes through one service point (real Redis, in-process
sandbox): partial and full, never more than was paid even when asked concurrently,
and a success that surfaces after a reversal was given up is refunded automatically."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from orchestrator.domain.commands import Accepted, Done, RefundOrder, Rejected
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.order import invariant_violations
from orchestrator.domain.states import AttemptState, Channel, OrderState, RefundState
from tests.core_harness import Harness, one, order_of, settled
from tests.support import eventually, new_id, small_config, unique_prefix


@pytest.fixture
async def harness(redis: Redis) -> AsyncIterator[Harness]:
    config = small_config(
        prefix=unique_prefix(),
        service_points=1,
        windows=4,
        # Give a reversal up quickly and follow the trade up often (x 0.05 time scale).
        channels={"WECHAT": {"reverse_give_up_after_s": 60, "follow_up_interval_s": 4}},
    )
    h = Harness.over_redis(redis, config)
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


def refund(h: Harness, order_id: str, amount: int, window: int = 1) -> RefundOrder:
    return RefundOrder(
        new_id(), f"{h.sp}T{window}", h.window(window), order_id, amount, "退费", "SUP1"
    )


async def paid_order(h: Harness, channel: Channel = Channel.WECHAT) -> str:
    core = h.cores[-1]
    order_id = order_of(await one(core, h.create()))["order_id"]
    await one(core, h.pay(order_id, channel))
    assert (await settled(h, order_id)).state is OrderState.PAID
    return order_id


async def refunded(h: Harness, order_id: str) -> None:
    await eventually(lambda: h.stored(order_id), lambda o: not o.pending_refunds())


async def test_partial_then_full_refund(harness: Harness) -> None:
    core = await harness.core()
    order_id = await paid_order(harness)
    first = await one(core, refund(harness, order_id, 2000))
    assert isinstance(first, Accepted) and first.refund_id
    await refunded(harness, order_id)
    order = await harness.stored(order_id)
    assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 2000)
    await one(core, refund(harness, order_id, 10000))
    await refunded(harness, order_id)
    order = await harness.stored(order_id)
    assert (order.state, order.refunded_fen) == (OrderState.REFUNDED, 12000)
    trade = harness.banks[Channel.WECHAT].trade(order.paid_by)
    assert trade is not None and trade.refunded_fen == 12000
    assert invariant_violations(order) == []
    too_much = await one(core, refund(harness, order_id, 1))
    assert isinstance(too_much, Rejected) and too_much.code is ErrorCode.FAILED_PRECONDITION


async def test_concurrent_refunds_never_exceed_the_payment(harness: Harness) -> None:
    core = await harness.core()
    order_id = await paid_order(harness)
    asks = [refund(harness, order_id, 5000) for _ in range(5)]  # 25000 asked of 12000
    results = await asyncio.gather(*(one(core, ask) for ask in asks))
    assert sum(isinstance(r, Accepted) for r in results) == 2
    assert all(isinstance(r, (Accepted, Rejected)) for r in results)
    await refunded(harness, order_id)
    order = await harness.stored(order_id)
    assert order.refunded_fen == 10000 and order.state is OrderState.PARTIALLY_REFUNDED
    trade = harness.banks[Channel.WECHAT].trade(order.paid_by)
    assert trade is not None and trade.refunded_fen == 10000


async def test_a_refund_replay_is_answered_once(harness: Harness) -> None:
    core = await harness.core()
    order_id = await paid_order(harness)
    ask = refund(harness, order_id, 3000)
    await one(core, ask)
    await refunded(harness, order_id)
    again = await one(core, ask)
    assert isinstance(again, Done)
    assert order_of(again)["refunded_fen"] == 3000
    assert (await harness.stored(order_id)).refunded_fen == 3000


async def test_cash_is_handed_back_at_once(harness: Harness) -> None:
    core = await harness.core()
    order_id = await paid_order(harness, Channel.CASH)
    result = await one(core, refund(harness, order_id, 12000))
    assert isinstance(result, Done) and order_of(result)["state"] == "REFUNDED"


async def test_refunds_are_made_at_the_service_point_that_was_paid(harness: Harness) -> None:
    core = await harness.core()
    order_id = await paid_order(harness)
    other_point = RefundOrder(new_id(), "G1T1", "G1W1", order_id, 100, "退费", "SUP1")
    result = await one(core, other_point)
    assert isinstance(result, Rejected) and result.code is ErrorCode.PERMISSION_DENIED


async def test_a_late_success_after_a_given_up_reversal_is_refunded(harness: Harness) -> None:
    core = await harness.core()
    bank = harness.banks[Channel.WECHAT]
    order_id = order_of(await one(core, harness.create()))["order_id"]
    bank.faults.add("reverse")  # the reversal will never get through
    await one(core, harness.pay(order_id, Channel.WECHAT, "2222"))
    order = await settled(harness, order_id)
    first = order.attempts[0]
    assert (first.state, first.follow_up) == (AttemptState.FAILED, True)
    assert order.state is OrderState.AWAITING_PAYMENT
    await one(core, harness.pay(order_id, Channel.ALIPAY))  # the payer pays again
    assert (await settled(harness, order_id)).state is OrderState.PAID

    bank.faults.clear()
    bank.confirm(first.attempt_id)  # ...and the first payment went through after all
    order = await eventually(
        lambda: harness.stored(order_id),
        lambda o: o.attempts[0].state is AttemptState.LATE_SUCCESS_REFUNDED,
    )
    [auto] = order.refunds
    assert auto.automatic and auto.state is RefundState.SUCCEEDED
    assert auto.amount_fen == order.amount_fen and "given up" in auto.reason
    assert order.state is OrderState.PAID and order.refunded_fen == 0
    assert invariant_violations(order) == []
    trade = bank.trade(first.attempt_id)
    assert trade is not None and trade.refunded_fen == order.amount_fen
    assert not order.is_open
