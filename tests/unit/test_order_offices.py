"""An order is stamped with its service point's office and site when it is made
(CreateOrderHandler), and its attempts and refunds are the order's: the in-memory store
and the sandbox banks, no Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.config import parse_config
from orchestrator.domain.commands import CreateOrder
from orchestrator.domain.states import Channel, OrderState, RefundState
from orchestrator.store.memory import MemoryStore
from tests.core_harness import LINES, Harness, one, order_of, settled
from tests.support import new_id, small_config, small_config_data, two_offices


@pytest.fixture
async def offices() -> AsyncIterator[Harness]:
    data = two_offices(small_config_data(prefix="E", service_points=3, windows=2))
    h = Harness(MemoryStore(), parse_config(data, "two offices"))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


async def test_an_order_carries_the_office_and_site_of_its_window(offices: Harness) -> None:
    core = await offices.core()
    made = {}
    for window in ("E1W2", "E3W1"):
        result = await one(core, CreateOrder(new_id(), new_id("B"), window, "张三", LINES))
        made[window] = order_of(result)
    assert (made["E1W2"]["office_id"], made["E1W2"]["site_id"]) == ("EA", "E1S")
    assert (made["E3W1"]["office_id"], made["E3W1"]["site_id"]) == ("EB", "E3S")
    order_id = made["E3W1"]["order_id"]
    stored = await offices.stored(order_id)
    assert (stored.office_id, stored.site_id) == ("EB", "E3S")
    # Paid and partly refunded: the order that holds the attempt and the refund keeps it.
    offices.sp = "E3"
    await one(core, offices.pay(order_id, Channel.WECHAT))
    paid = await settled(offices, order_id)
    assert paid.state is OrderState.PAID
    await one(core, offices.refund(order_id, 1000))
    refunded = await settled(offices, order_id)
    assert [r.state for r in refunded.refunds] == [RefundState.SUCCEEDED]
    assert (refunded.office_id, refunded.site_id) == ("EB", "E3S")


async def test_an_order_of_a_deployment_without_offices_carries_none() -> None:
    h = Harness(MemoryStore(), small_config(service_points=1, windows=1))
    core = await h.core()
    try:
        record = order_of(await one(core, h.create()))
        assert "office_id" not in record and "site_id" not in record
    finally:
        await core.stop()
