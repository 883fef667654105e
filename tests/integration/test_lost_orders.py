"""A live order is never lost from Redis: a refund reopening a drained order clears the
expiry the drainer gave it, even while PostgreSQL is down; and an open order whose keys
are gone anyway is an alarm and comes back from the record (real Redis, a real
PostgreSQL, the drainer and the service-point core; no Ray)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.domain.commands import Accepted, RefundOrder
from orchestrator.domain.order import Order
from orchestrator.domain.states import Channel, OrderState, RefundState
from orchestrator.record.drainer import Drainer
from orchestrator.record.metrics import LIVE_ORDER_RELOADS
from orchestrator.record.reader import RecordReader
from orchestrator.record.writer import DrainedOrder
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.servicepoint.telemetry import InFlightCollector
from orchestrator.store import keys
from tests.core_harness import Harness, one, order_of, settled
from tests.integration.test_record import (
    caught_up,
    own_postgres,
    pool_of,
    reconnecting_pool,
    record_config,
    running,
)
from tests.support import eventually, new_id

RETENTION_S = 5.0  # what a drained final order's keys get here (100 s x time scale 0.05)


@asynccontextmanager
async def office(redis: Redis) -> AsyncIterator[Harness]:
    h = Harness.over_redis(redis, record_config(retention_s=RETENTION_S / 0.05))
    try:
        yield h
    finally:
        for core in h.cores:
            await core.stop()
    assert h.fatal == []


def names(h: Harness, order_id: str) -> list[str]:
    return [keys.order(h.sp, order_id), keys.journal(h.sp, order_id)]


async def paid(h: Harness, core: ServicePointCore) -> str:
    """A WeChat order, paid."""
    order_id: str = order_of(await one(core, h.create()))["order_id"]
    await one(core, h.pay(order_id))
    assert (await settled(h, order_id)).state is OrderState.PAID
    return order_id


async def ask_refund(h: Harness, core: ServicePointCore, order_id: str) -> None:
    """A refund the provider keeps answering "unavailable": it stays pending."""
    h.banks[Channel.WECHAT].faults.add("refund")
    supervisor = f"{h.sp}S"
    refund = RefundOrder(new_id(), f"{h.sp}T1", h.window(1), order_id, 2000, "退费", supervisor)
    assert isinstance(await one(core, refund), Accepted)


async def refunded(h: Harness, order_id: str) -> Order:
    h.banks[Channel.WECHAT].faults.clear()
    return await eventually(
        lambda: h.stored(order_id), lambda o: not o.pending_refunds(), within=30
    )


async def test_a_refund_near_the_ttl_keeps_the_keys_while_postgres_is_down(redis: Redis) -> None:
    with own_postgres() as (postgres, url):
        async with (
            office(redis) as h,
            reconnecting_pool(url) as pool,
            running(Drainer(redis, pool, h.config)) as drainer,
        ):
            core = await h.core()
            order_id = await paid(h, core)
            order_keys = names(h, order_id)
            # Drained final: the keys have the retention, and it is running out.
            await eventually(lambda: redis.pttl(order_keys[0]), lambda ms: ms > 0)
            ends_at = asyncio.get_running_loop().time() + RETENTION_S
            postgres.stop()
            await ask_refund(h, core, order_id)
            assert [await redis.pttl(name) for name in order_keys] == [-1, -1]
            await asyncio.sleep(ends_at - asyncio.get_running_loop().time() + 1.0)
            assert await redis.exists(*order_keys) == 2  # past the old retention: still here
            order = await refunded(h, order_id)
            assert order.refunds[0].state is RefundState.SUCCEEDED
            # Final, but the record does not have it yet: still no expiry.
            assert [await redis.pttl(name) for name in order_keys] == [-1, -1]
            postgres.start()
            await caught_up(drainer)
            await eventually(lambda: redis.pttl(order_keys[0]), lambda ms: ms > 0)
            assert 0 < await redis.pttl(order_keys[1]) <= RETENTION_S * 1000


def missing_gauge(core: ServicePointCore) -> dict[str, float]:
    [family] = [f for f in InFlightCollector(core).collect() if f.name.endswith("missing")]
    assert family.name == "windowpay_live_orders_missing"
    return {s.labels["service_point"]: s.value for s in family.samples}


async def test_a_missing_open_order_is_an_alarm_and_comes_back_from_the_record(
    redis: Redis, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    reloads = LIVE_ORDER_RELOADS.labels("reloaded")
    async with (
        office(redis) as h,
        pool_of(database_url) as pool,
        running(Drainer(redis, pool, h.config)) as drainer,
    ):
        first = await h.core()
        order_id = await paid(h, first)
        await ask_refund(h, first, order_id)
        pending = await h.stored(order_id)
        reader = RecordReader(pool)
        await eventually(  # the record has the order, its refund pending
            lambda: reader.versions([order_id]), lambda v: v.get(order_id) == pending.version
        )
        await first.stop()
        await redis.delete(*names(h, order_id))  # and Redis loses it
        reloaded_before = reloads._value.get()

        with caplog.at_level(logging.ERROR, logger="orchestrator.servicepoint.lost"):
            second = await h.core()
        assert f"order {order_id} is open at {h.sp} but its snapshot is missing" in caplog.text
        assert missing_gauge(second)[h.sp] == 1
        await eventually(lambda: asyncio.sleep(0, reloads._value.get()), lambda n: n > 0)
        assert reloads._value.get() == reloaded_before + 1
        await eventually(lambda: asyncio.sleep(0, missing_gauge(second)), lambda g: g[h.sp] == 0)

        # Back under the actor's care: its refund goes on from where the record had it.
        order = await refunded(h, order_id)
        assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 2000)
        assert await redis.scard(keys.missing_orders(h.sp)) == 0
        await caught_up(drainer)
        recorded = await reader.order(order_id)
        assert recorded is not None
        assert orjson.loads(recorded)["refunded_fen"] == 2000


async def test_the_retention_goes_only_to_the_version_the_record_has(
    redis: Redis, database_url: str
) -> None:
    """The drainer read version n, closed; meanwhile a refund made it n+1 and open: the
    retention for n must not land on n+1."""
    async with office(redis) as h, pool_of(database_url) as pool:
        core = await h.core()
        order_id = await paid(h, core)
        current = (await h.stored(order_id)).to_record()
        drainer = Drainer(redis, pool, h.config)
        older = DrainedOrder({**current, "version": current["version"] - 1}, [])
        await drainer._retain([older], [])
        assert [await redis.pttl(name) for name in names(h, order_id)] == [-1, -1]
        await drainer._retain([DrainedOrder(current, [])], [])
        assert all(ms > 0 for ms in [await redis.pttl(name) for name in names(h, order_id)])
