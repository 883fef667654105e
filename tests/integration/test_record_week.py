"""A compressed week (time_scale 0.0001: a day is 8.6 s) of an office paying in cash and
through the WeChat and Alipay sandboxes, with the drainer running: PostgreSQL holds every
order, and the Redis memory of the office's orders stays flat once the retention (two
days here) has passed.

The retention is a TTL counted in wall time from the drain, so what Redis holds at a
moment is what was paid in the retention before it. On a loaded machine a day's payments
may take longer than the day, so the test checks that against when each order was seen
paid, not against the count of days."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import psycopg
import pytest
from redis.asyncio import Redis

from orchestrator.config import parse_config
from orchestrator.domain.commands import Accepted, CreateOrder, Done, Pay
from orchestrator.domain.states import Channel
from orchestrator.record.drainer import Drainer
from orchestrator.store import keys
from orchestrator.store.redis_store import RedisStore
from tests.integration.test_record import LINES, Office, caught_up, pool_of, record_data, running
from tests.support import code, eventually, new_id

DAY_S = 86_400 * 0.0001
RETENTION_S = 2 * DAY_S
# How long after an order is seen paid its keys may still be held: the retention, the
# drainer's lag under load and Redis's expiry, bounded generously by one more day.
HELD_AT_MOST_S = RETENTION_S + DAY_S
# How late the test may see an order paid after it was (the polling of `eventually`).
SEEN_LATE_S = 1.0
CHANNELS = (Channel.CASH, Channel.WECHAT, Channel.ALIPAY)


@pytest.fixture
async def office(redis: Redis) -> AsyncIterator[Office]:
    data = record_data(retention_s=2 * 86_400, housekeeping_s=0.5)
    data["service"]["time_scale"] = 0.0001
    office = Office(redis, parse_config(data, "week"))
    await office.core.start()
    yield office
    await office.core.stop()


async def pay_at(office: Office, window: str, orders: int, first: int) -> dict[str, float]:
    """One window's payers of the day, one after the other (a window takes one payment
    at a time); when (loop time) each order was seen paid."""
    loop = asyncio.get_running_loop()
    seen_paid: dict[str, float] = {}
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
        seen_paid[order_id] = loop.time()
    return seen_paid


@dataclass
class Held:
    """What Redis holds of the office at a moment."""

    state: int  # bytes of its service points' keys, the stored responses apart
    ids: set[str]  # the orders whose snapshot it holds
    orders: int  # bytes of those orders' own keys: snapshots and journals
    outbox: int  # entries in the service points' outbox streams
    claims: int  # bytes of the business-case claims kept after their orders left


async def order_bytes(office: Office) -> Held:
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
    sizes = dict(zip(names, answers[: len(names)], strict=True))
    held = {
        name.split(b"}:o:")[1].decode(): name
        for name, size in sizes.items()
        if b"}:o:" in name and size  # None: expired between the scan and its size
    }
    orders = sum(
        int(sizes[snapshot]) + int(sizes.get(snapshot.replace(b"}:o:", b"}:j:")) or 0)
        for snapshot in held.values()
    )
    pipe = office.redis.pipeline(transaction=False)
    for sp in office.points:
        pipe.xlen(keys.outbox(sp))
    outbox = sum(int(n) for n in await pipe.execute())
    mine = [
        c
        for c, held in zip(cases, answers[len(names) :], strict=True)
        if held and held.decode().startswith(prefix)
    ]
    pipe = office.redis.pipeline(transaction=False)
    for name in mine:
        pipe.memory_usage(name)
    claims = sum(int(a or 0) for a in await pipe.execute()) if mine else 0
    return Held(state, set(held), orders, outbox, claims)


@pytest.mark.timeout(400)
async def test_a_compressed_week_keeps_redis_flat_and_every_order_in_postgres(
    office: Office, database_url: str
) -> None:
    per_day = 60
    loop = asyncio.get_running_loop()
    seen_paid: dict[str, float] = {}
    state_by_day: list[int] = []
    orders_by_day: list[int] = []
    outbox_by_day: list[int] = []
    held_by_day: list[int] = []
    recent_by_day: list[int] = []  # orders paid within the longest an order may be held
    total = 0
    async with (
        pool_of(database_url) as pool,
        running(Drainer(office.redis, pool, office.config)) as drainer,
    ):
        for _day in range(7):
            day_ends = loop.time() + DAY_S
            windows = sorted(office.config.deployment.window_service_point)
            share = per_day // len(windows)
            for paid in await asyncio.gather(
                *(pay_at(office, w, share, total + i * share) for i, w in enumerate(windows))
            ):
                seen_paid.update(paid)
            total += per_day
            await asyncio.sleep(max(0.0, day_ends - loop.time()))
            await caught_up(drainer)  # what is measured is the retention, not a lag
            # What is held, counted and weighed in one look (keys expire while it is taken).
            looked = loop.time()
            held_now = await order_bytes(office)
            looked_until = loop.time()
            held = held_now.ids
            assert held <= set(seen_paid)  # the office's orders are the ones paid here
            # The retention lets go of what is older than it, and of nothing younger.
            overdue = [o for o in held if seen_paid[o] < looked - HELD_AT_MOST_S]
            assert overdue == [], f"held past the retention: {len(overdue)} orders"
            early = [
                o
                for o in seen_paid
                if o not in held and seen_paid[o] > looked_until - RETENTION_S + SEEN_LATE_S
            ]
            assert early == [], f"let go before the retention: {len(early)} orders"
            state_by_day.append(held_now.state)
            orders_by_day.append(held_now.orders)
            outbox_by_day.append(held_now.outbox)
            held_by_day.append(len(held))
            recent_by_day.append(sum(1 for t in seen_paid.values() if t >= looked - HELD_AT_MOST_S))
        await caught_up(drainer)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM orders")).fetchone()
    assert row is not None and row[0] == total  # the record holds every order
    # What is held costs the same per order every day: nothing else piles up beside it.
    per_order = [s / h for s, h in zip(orders_by_day, held_by_day, strict=True)]
    assert max(per_order) <= 1.5 * min(per_order), (orders_by_day, held_by_day)
    # The outbox lets go with the retention too: one entry per paid order, none older
    # than what the orders themselves may be held for (the retention plus a day).
    assert all(n <= r for n, r in zip(outbox_by_day, recent_by_day, strict=True)), (
        outbox_by_day,
        recent_by_day,
    )
    # Kept forever, a week's orders would take seven times the first day's bytes.
    assert state_by_day[-1] < 0.6 * 7 * state_by_day[0], (state_by_day, held_by_day)
    assert held_now.claims < 150 * total  # the claims that stay: about 100 bytes per paid order
