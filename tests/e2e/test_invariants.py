"""A random storm of concurrent API calls (duplicates, races on one window, cancels,
every provider behaviour), then the invariants of docs/DOMAIN.md §4 checked on every order
and against the sandbox ledger: nobody is charged twice, every attempt ends final."""

import asyncio
import random
import uuid

import grpc
import orjson
from redis.asyncio import Redis

from orchestrator.domain.order import Order, invariant_violations
from orchestrator.domain.states import AttemptState, Channel, OrderState
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.store.redis_store import RedisStore
from tests.e2e.conftest import Deployed
from tests.support import PROVIDER_CHANNELS, eventually

EXPECTED_REFUSALS = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.INVALID_ARGUMENT,
}
ENDINGS = ["0000", "0000", "1111", "2222", "3333", "4444", "5555", "6666", "7777", "9999"]


async def test_no_invariant_breaks_under_a_storm_of_calls(deployed: Deployed) -> None:
    rng = random.Random(20261128)
    windows = [deployed.window() for _ in range(4)]
    orders: list[pb.Order] = [await deployed.create(w) for w in windows for _ in range(3)]
    sent_pays: list[pb.PayRequest] = []
    refusals: list[grpc.StatusCode] = []

    async def one_call() -> None:
        order = rng.choice(orders)
        roll = rng.random()
        try:
            if roll < 0.55:
                channel = rng.choice([*PROVIDER_CHANNELS, Channel.CASH])
                request = deployed.pay_request(order, channel, rng.choice(ENDINGS))
                sent_pays.append(request)
                await deployed.terminal_for(request.terminal_id).Pay(request, timeout=30)
            elif roll < 0.75 and sent_pays:
                replay = rng.choice(sent_pays)
                await deployed.terminal_for(replay.terminal_id).Pay(replay, timeout=30)
            elif roll < 0.85:
                await deployed.business.CancelOrder(
                    pb.CancelOrderRequest(request_id=uuid.uuid4().hex, order_id=order.order_id),
                    timeout=10,
                )
            else:
                orders.append(await deployed.create(rng.choice(windows)))
        except grpc.aio.AioRpcError as error:
            refusals.append(error.code())

    semaphore = asyncio.Semaphore(16)

    async def bounded() -> None:
        async with semaphore:
            await one_call()

    await asyncio.gather(*(bounded() for _ in range(160)))
    assert set(refusals) <= EXPECTED_REFUSALS, refusals

    store = RedisStore(Redis.from_url(deployed.redis_url))
    try:
        for created in orders:
            order = await eventually(
                lambda o=created: _stored(store, o.order_id),
                lambda o: o.in_flight() is None,
                within=30,
            )
            assert invariant_violations(order) == [], order
            _check_ledger(deployed, order)
    finally:
        await store.redis.aclose()


async def _stored(store: RedisStore, order_id: str) -> Order:
    snapshot = await store.order(order_id)
    assert snapshot is not None
    return Order.from_record(orjson.loads(snapshot))


def _check_ledger(deployed: Deployed, order: Order) -> None:
    """Money actually kept by the providers for this order: at most one payment."""
    kept = 0
    for attempt in order.attempts:
        if attempt.channel is Channel.CASH:
            kept += attempt.state is AttemptState.SUCCEEDED
            continue
        trade = deployed.trade(attempt.channel, attempt.attempt_id)
        if trade is not None and trade.state.value == "SUCCESS":
            kept += 1
            assert attempt.state is AttemptState.SUCCEEDED, (attempt, trade)
            assert trade.amount_fen == order.amount_fen
    assert kept == (1 if order.state is OrderState.PAID else 0), order
