"""Receipts from the outbox, against a real Redis: one per paid order, numbers unique
and gap-free per receipt code even with several issuers at once, check codes that a
forger cannot produce, refunds marked."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.domain.commands import Accepted, Done, RefundOrder
from orchestrator.domain.states import Channel
from orchestrator.receipts.issuer import GROUP, ReceiptIssuer
from orchestrator.receipts.numbering import check_code
from orchestrator.store.outbox import Outbox
from orchestrator.store.receipts import ReceiptStore
from tests.core_harness import Harness, one, order_of, settled
from tests.support import eventually, new_id, small_config, unique_prefix

SECRET = os.urandom(32)


@pytest.fixture
async def harness(redis: Redis) -> AsyncIterator[Harness]:
    h = Harness.over_redis(redis, small_config(prefix=unique_prefix(), service_points=2, windows=4))
    yield h
    for core in h.cores:
        await core.stop()


async def paid_orders(h: Harness, count: int, channel: Channel = Channel.CASH) -> list[str]:
    core = h.cores[-1] if h.cores else await h.core()
    order_ids = []
    for i in range(count):
        order_id = order_of(await one(core, h.create(window=1 + i % 4)))["order_id"]
        result = await one(core, h.pay(order_id, channel, window=1 + i % 4))
        assert isinstance(result, (Done, Accepted))
        await settled(h, order_id)
        order_ids.append(order_id)
    return order_ids


async def test_the_outbox_carries_paid_and_refunded_events_in_order(harness: Harness) -> None:
    core = await harness.core()
    [order_id] = await paid_orders(harness, 1)
    await one(
        core, RefundOrder(new_id(), f"{harness.sp}T1", harness.window(1), order_id, 500, "r", "S")
    )
    outbox = Outbox(harness.redis, [harness.sp])
    await outbox.join("test")
    events = []
    async for event in outbox.events("test", "reader", block_ms=50):
        if event is None:
            break
        events.append(event)
    assert [(e.kind, orjson.loads(e.order)["order_id"]) for e in events] == [
        ("ORDER_PAID", order_id),
        ("ORDER_REFUNDED", order_id),
    ]
    assert events[1].refund_id and orjson.loads(events[1].order)["refunded_fen"] == 500
    assert await outbox.ack("test", [e.event_id for e in events]) == 2
    await outbox.close()


async def test_receipt_numbers_are_unique_and_gap_free_under_concurrency(harness: Harness) -> None:
    order_ids = await paid_orders(harness, 12)
    issuers = [
        ReceiptIssuer(harness.redis, harness.config, SECRET, f"issuer-{i}") for i in range(3)
    ]
    # Three issuers share the outbox...
    runs = [asyncio.create_task(issuer.run()) for issuer in issuers]
    store = ReceiptStore(harness.redis)
    try:
        receipts = [
            await eventually(lambda o=o: store.of_order(o), lambda r: r is not None)
            for o in order_ids
        ]
    finally:
        for issuer in issuers:
            issuer.stop()
        await asyncio.gather(*runs)
    # ...and the same orders issued again, all at once, change nothing.
    snapshots = [await harness.store.order(o) for o in order_ids]
    again = await asyncio.gather(
        *(issuers[i % 3].issue(orjson.loads(s), 0) for i, s in enumerate(snapshots * 2))
    )
    records = [orjson.loads(r) for r in receipts if r is not None]
    codes = {r["receipt_code"] for r in records}
    assert len(codes) == 1
    numbers = sorted(int(r["receipt_no"]) for r in records)
    last = await store.last_number(codes.pop())
    assert len(set(numbers)) == 12
    assert numbers == list(range(numbers[0], numbers[0] + 12))  # no gaps among ours
    assert last >= numbers[-1]
    assert {(a["order_id"], a["receipt_no"]) for a in again} == {
        (r["order_id"], r["receipt_no"]) for r in records
    }


async def test_a_check_code_cannot_be_made_without_the_secret(harness: Harness) -> None:
    code, number = "53010126", "0000000042"
    genuine = check_code(SECRET, code, number, "SP01-X", 12000)
    assert genuine == check_code(SECRET, code, number, "SP01-X", 12000)
    assert genuine != check_code(os.urandom(32), code, number, "SP01-X", 12000)
    assert genuine != check_code(SECRET, code, number, "SP01-X", 12001)


async def test_a_refund_marks_the_receipt(harness: Harness) -> None:
    core = await harness.core()
    [order_id] = await paid_orders(harness, 1, Channel.CASH)
    issuer = ReceiptIssuer(harness.redis, harness.config, SECRET, "marker")
    run = asyncio.create_task(issuer.run())
    store = ReceiptStore(harness.redis)
    try:
        await eventually(lambda: store.of_order(order_id), lambda r: r is not None)
        await one(
            core,
            RefundOrder(new_id(), f"{harness.sp}T1", harness.window(1), order_id, 12000, "r", "S"),
        )
        record = await eventually(
            lambda: store.of_order(order_id),
            lambda r: r is not None and orjson.loads(r)["status"] == "REFUNDED",
        )
        assert record is not None and orjson.loads(record)["refunded_fen"] == 12000
    finally:
        issuer.stop()
        await run
    assert GROUP == "receipts"
