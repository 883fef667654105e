"""Open orders the store lost, with the in-memory store: a commit clears the expiry of
what it writes (as commit.lua does), and an open order whose snapshot is gone is asked
back, answers UNAVAILABLE meanwhile (never a second order for its case), and is taken
back once it is in the store again."""

from __future__ import annotations

import asyncio

from orchestrator.domain.commands import Rejected
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.states import OrderState
from orchestrator.store import keys
from orchestrator.store.memory import MemoryStore
from orchestrator.store.write_batch import WriteBatch
from tests.core_harness import Harness, harness, one, order_of, settled
from tests.support import eventually

__all__ = ["harness"]  # the fixture, used by name


async def test_the_fake_clears_the_expiry_of_what_a_commit_writes() -> None:
    store = MemoryStore()
    epoch = await store.take_over("SPX")
    first = WriteBatch()
    first.save_order("SPX", "SPX-A", 0, 1, b"snap1", [b"j1"], b"e")
    await store.commit(first, {"SPX": epoch})
    names = [keys.order("SPX", "SPX-A"), keys.journal("SPX", "SPX-A")]
    store.expiring.update(dict.fromkeys(names, 604_800_000))  # drained final, as in Redis
    reopened = WriteBatch()
    reopened.save_order("SPX", "SPX-A", 1, 2, b"snap2", [b"j2"], b"e")
    reopened.mark_open("SPX", "SPX-A", "W1")
    await store.commit(reopened, {"SPX": epoch})
    assert store.expiring == {}


async def test_a_missing_open_order_waits_for_the_record_then_is_taken_back(
    harness: Harness,
) -> None:
    first = await harness.core()
    created = harness.create()
    order_id = order_of(await one(first, created))["order_id"]
    await first.stop()
    order_key = keys.order(harness.sp, order_id)
    lost = harness.store.hashes.pop(order_key)  # Redis lost the snapshot

    second = await harness.core()
    assert second.missing_orders() == {harness.sp: 1}
    asked = harness.store.sets[keys.missing_orders(harness.sp)]
    assert asked == {order_id.encode()}
    paying = await one(second, harness.pay(order_id))
    assert isinstance(paying, Rejected) and paying.code is ErrorCode.UNAVAILABLE
    assert "being reloaded from the record" in paying.message
    again = harness.create(business_no=created.business_no)
    second_order = await one(second, again)  # never a second order for the same case
    assert isinstance(second_order, Rejected) and second_order.code is ErrorCode.UNAVAILABLE

    harness.store.hashes[order_key] = lost  # the drainer put it back from the record
    await eventually(
        lambda: asyncio.sleep(0, second.missing_orders()), lambda m: not any(m.values())
    )
    await one(second, harness.pay(order_id))
    assert (await settled(harness, order_id)).state is OrderState.PAID
