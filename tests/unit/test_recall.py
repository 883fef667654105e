"""Orders that have left the store, recalled from the record, with the in-memory store
and a record that is a dictionary: the put-back is fenced; a late success's refund finds
the order too; while the record cannot be read the command answers UNAVAILABLE and
keeps nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.domain import ids
from orchestrator.domain.commands import Accepted, Done, Rejected, SettleLateSuccess
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.states import AttemptState, Channel, OrderState, RefundState
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store import keys
from orchestrator.store.memory import MemoryStore
from orchestrator.store.port import RecordedOrder
from tests.core_harness import Harness, one, order_of, settled
from tests.support import PROVIDER_CHANNELS, new_id, small_config

RETENTION_MS = int(7 * 86_400 * 0.05 * 1000)  # the default retention, at time scale 0.05


class Record:
    """What the drainer copied: the orders as the store held them when they left it."""

    def __init__(self) -> None:
        self.orders: dict[str, RecordedOrder] = {}
        self.away = False
        self.asked: list[str] = []

    def copy(self, store: MemoryStore, order_id: str) -> None:
        sp = ids.service_point_of(order_id)
        held = store.hashes[keys.order(sp, order_id)]
        self.orders[order_id] = RecordedOrder(
            order_id, int(held["v"]), held["s"], list(store.lists[keys.journal(sp, order_id)])
        )

    async def recorded_order(self, order_id: str) -> RecordedOrder | None:
        self.asked.append(order_id)
        if self.away:
            raise OSError("connection refused")
        return self.orders.get(order_id)


class RecordHarness(Harness):
    def __init__(self) -> None:
        super().__init__(MemoryStore(), small_config(service_points=1, windows=2))
        self.record = Record()

    async def recording_core(self) -> ServicePointCore:
        for older in self.cores:
            await older.stop()
        providers = {ch: SandboxProvider(ch, self.banks[ch]) for ch in PROVIDER_CHANNELS}
        core = ServicePointCore(
            [self.sp], self.config, self.store, providers, on_fatal=self.fatal.append,
            record=self.record,
        )  # fmt: skip
        await core.start()
        self.cores.append(core)
        return core

    def leaves(self, order_id: str) -> None:
        """Drained to the record, then gone from the store after the retention."""
        self.record.copy(self.store, order_id)
        sp = ids.service_point_of(order_id)
        del self.store.hashes[keys.order(sp, order_id)]
        del self.store.lists[keys.journal(sp, order_id)]


@pytest.fixture
async def h() -> AsyncIterator[RecordHarness]:
    harness = RecordHarness()
    yield harness
    for core in harness.cores:
        await core.stop()
    assert harness.fatal == []


async def paid(h: RecordHarness, core: ServicePointCore) -> str:
    order_id: str = order_of(await one(core, h.create()))["order_id"]
    await one(core, h.pay(order_id))
    assert (await settled(h, order_id)).state is OrderState.PAID
    return order_id


async def test_the_put_back_is_fenced_and_a_closed_order_expires_again() -> None:
    store = MemoryStore()
    recorded = RecordedOrder("SPX-A", 3, b"snap", [b"j1", b"j2", b"j3"])
    put = [
        await store.restore(recorded, open_at="", retention_ms=1000, only_if_open=False)
        for _ in range(2)
    ]
    assert put == [True, False]
    assert store.lists[keys.journal("SPX", "SPX-A")] == [b"j1", b"j2", b"j3"]
    assert store.expiring == {keys.order("SPX", "SPX-A"): 1000, keys.journal("SPX", "SPX-A"): 1000}
    opened = RecordedOrder("SPX-B", 2, b"snap", [b"j1", b"j2"])
    assert await store.restore(opened, open_at="W1", retention_ms=1000, only_if_open=False)
    assert store.hashes[keys.open_orders("SPX")] == {"SPX-B": b"W1"}
    assert keys.order("SPX", "SPX-B") not in store.expiring
    # The drainer's reload of a missing open order: only while the open set names it.
    dropped = RecordedOrder("SPX-C", 2, b"snap", [])
    assert not await store.restore(dropped, open_at="W1", retention_ms=1000, only_if_open=True)


async def test_a_late_success_of_a_gone_order_is_refunded(h: RecordHarness) -> None:
    core = await h.recording_core()
    order_id: str = order_of(await one(core, h.create()))["order_id"]
    await one(core, h.pay(order_id, ending="3333"))  # declined
    assert (await settled(h, order_id)).state is OrderState.AWAITING_PAYMENT
    assert isinstance(await one(core, h.pay(order_id)), Accepted)
    order = await settled(h, order_id)
    declined = order.attempts[0]
    assert (order.state, declined.state) == (OrderState.PAID, AttemptState.FAILED)
    h.leaves(order_id)
    core = await h.recording_core()

    settle = SettleLateSuccess(new_id(), order_id, declined.attempt_id, "T-LATE", "bill shows it")
    assert isinstance(await one(core, settle), Done)
    order = await settled(h, order_id)
    [automatic] = order.refunds
    assert automatic.automatic and automatic.amount_fen == declined.amount_fen
    assert automatic.state in (RefundState.SUCCEEDED, RefundState.FAILED)  # the provider's word
    journal = [orjson.loads(e)["v"] for e in await h.store.journal(order_id)]
    assert journal == list(range(1, order.version + 1))


async def test_while_the_record_is_away_a_refund_answers_unavailable_and_keeps_nothing(
    h: RecordHarness,
) -> None:
    core = await h.recording_core()
    order_id = await paid(h, core)
    h.leaves(order_id)
    h.record.away = True
    refund = h.refund(order_id, 3000)
    answer = await one(core, refund)
    assert isinstance(answer, Rejected) and answer.code is ErrorCode.UNAVAILABLE
    assert "retry with the same request_id" in answer.message
    assert keys.request_claim(refund.request_id) not in h.store.strings
    assert await h.store.order(order_id) is None

    h.record.away = False
    assert isinstance(await one(core, refund), Accepted)  # the same request, once it can
    order = await settled(h, order_id)
    assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 3000)


async def test_only_refunds_recall_an_order(h: RecordHarness) -> None:
    """A payment or a cancel of an order gone from the store stays NOT_FOUND: neither
    could act on a closed order, and neither costs a read of the record."""
    core = await h.recording_core()
    order_id = await paid(h, core)
    h.leaves(order_id)
    for command in (h.pay(order_id, Channel.CASH), h.refund(order_id, 0)):
        answer = await one(core, command)
        assert isinstance(answer, Rejected)
        assert answer.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_ARGUMENT)
    assert h.record.asked == []
