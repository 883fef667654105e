"""A compressed week (time_scale 0.0001: a day is 8.6 s) of an office paying in cash and
through the WeChat and Alipay sandboxes, with the drainer running: PostgreSQL holds every
order, and the Redis memory of the office's orders stays flat once the retention (two
days here) has passed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import psycopg
import pytest
from redis.asyncio import Redis

from orchestrator.config import parse_config
from orchestrator.domain.commands import Accepted, CreateOrder, Done, Pay
from orchestrator.domain.states import Channel
from orchestrator.record.drainer import Drainer
from orchestrator.store.redis_store import RedisStore
from tests.integration.test_record import LINES, Office, caught_up, pool_of, record_data, running
from tests.support import code, eventually, new_id

DAY_S = 86_400 * 0.0001
CHANNELS = (Channel.CASH, Channel.WECHAT, Channel.ALIPAY)


@pytest.fixture
async def office(redis: Redis) -> AsyncIterator[Office]:
    data = record_data(retention_s=2 * 86_400, housekeeping_s=0.5)
    data["service"]["time_scale"] = 0.0001
    office = Office(redis, parse_config(data, "week"))
    await office.core.start()
    yield office
    await office.core.stop()


async def pay_at(office: Office, window: str, orders: int, first: int) -> None:
    """One window's payers of the day, one after the other (a window takes one payment
    at a time)."""
    terminal = next(t for t, w in office.config.deployment.terminal_window.items() if w == window)
    store = RedisStore(office.redis)
    for n in range(first, first + orders):
        create = CreateOrder(new_id(), new_id("B"), window, "张三", LINES)
        [created] = await office.core.submit([create])
        assert isinstance(created, Done)
        order_id = orjson.loads(created.order)["order_id"]
        channel = CHANNELS[n % len(CHANNELS)]
        cash = 20000 if channel is Channel.CASH else 0
        pay = Pay(new_id(), terminal, window, order_id, channel, code(channel), cash)
        [answer] = await office.core.submit([pay])
        assert isinstance(answer, (Done, Accepted)), answer
        await eventually(
            lambda o=order_id: store.order(o), lambda s: b'"state":"PAID"' in (s or b"")
        )


async def order_bytes(office: Office) -> tuple[int, int]:
    """Redis bytes of the office's per-order state (its service points' keys but the
    stored responses), and of the business-case claims kept after their orders left."""
    prefix = office.points[0][:-1]
    names = [
        k
        async for k in office.redis.scan_iter(match=f"wp:{{{prefix}*", count=1000)
        # Stored responses keep the idempotency window (>= 24 h of wall time, which a
        # time scale does not shorten): a day of traffic, bounded on their own.
        if b"}:r:" not in k
    ]
    cases = [k async for k in office.redis.scan_iter(match="wp:biz:*", count=1000)]
    pipe = office.redis.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name)
    for name in cases:
        pipe.get(name)
    answers = await pipe.execute()
    state = sum(int(a or 0) for a in answers[: len(names)])
    mine = [
        c
        for c, held in zip(cases, answers[len(names) :], strict=True)
        if held and held.decode().startswith(prefix)
    ]
    pipe = office.redis.pipeline(transaction=False)
    for name in mine:
        pipe.memory_usage(name)
    claims = sum(int(a or 0) for a in await pipe.execute()) if mine else 0
    return state, claims


@pytest.mark.timeout(400)
async def test_a_compressed_week_keeps_redis_flat_and_every_order_in_postgres(
    office: Office, database_url: str
) -> None:
    per_day = 60
    loop = asyncio.get_running_loop()
    state_by_day: list[int] = []
    total = 0
    async with (
        pool_of(database_url) as pool,
        running(Drainer(office.redis, pool, office.config)) as drainer,
    ):
        for _day in range(7):
            day_ends = loop.time() + DAY_S
            windows = sorted(office.config.deployment.window_service_point)
            share = per_day // len(windows)
            await asyncio.gather(
                *(pay_at(office, w, share, total + i * share) for i, w in enumerate(windows))
            )
            total += per_day
            await asyncio.sleep(max(0.0, day_ends - loop.time()))
            await caught_up(drainer)  # what is measured is the retention, not a lag
            state, claims = await order_bytes(office)
            state_by_day.append(state)
        await caught_up(drainer)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM orders")).fetchone()
    assert row is not None and row[0] == total  # the record holds every order
    # From the third day on the retention lets go as much as a day brings.
    settled = state_by_day[2:]
    assert max(settled) <= 1.5 * min(settled), state_by_day
    # Kept forever, a week's orders would take seven times the first day's bytes.
    assert state_by_day[-1] < 0.6 * 7 * state_by_day[0], state_by_day
    assert claims < 150 * total  # the claims that stay: about 100 bytes per paid order
