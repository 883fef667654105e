"""ServicePointCore against the in-memory store and in-process sandbox banks: its logic
(idempotency, claims, one payment per window, refunds, take-over) with no Redis, no Ray."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import Config
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import (
    Accepted,
    CancelOrder,
    CreateOrder,
    Done,
    Pay,
    Refund,
    Rejected,
    Result,
)
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.order import Order, invariant_violations
from orchestrator.domain.states import AttemptState, Channel, OrderState, RefundState
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.servicepoint.observer import MetricsObserver
from orchestrator.servicepoint.supervisor import DriverSupervisor
from orchestrator.store import keys
from orchestrator.store.memory import MemoryStore
from orchestrator.store.port import CommitRejected, LiveOrders
from orchestrator.store.write_batch import WriteBatch
from tests.support import PROVIDER_CHANNELS, code, eventually, new_id, small_config

LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 2))


class Harness:
    """One deployment over one MemoryStore, with one or more core incarnations."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = MemoryStore()
        self.sp = config.deployment.service_points[0].id
        self.banks = {
            ch: SandboxBank(ch.value, Timing(time_scale=config.settings.time_scale))
            for ch in PROVIDER_CHANNELS
        }
        self.fatal: list[BaseException] = []
        self.cores: list[ServicePointCore] = []

    async def core(self, observer: Any = None) -> ServicePointCore:
        providers = {ch: SandboxProvider(ch, self.banks[ch]) for ch in PROVIDER_CHANNELS}
        core = ServicePointCore(
            [sp.id for sp in self.config.deployment.service_points],
            self.config,
            self.store,
            providers,
            on_fatal=self.fatal.append,
            observer=observer,
        )
        await core.start()
        self.cores.append(core)
        return core

    def window(self, n: int = 1) -> str:
        return f"{self.sp}W{n}"

    def create(
        self, window: int = 1, *, business_no: str = "", lines: tuple[RequestedLine, ...] = LINES
    ) -> CreateOrder:
        return CreateOrder(new_id(), business_no or new_id("B"), self.window(window), "张三", lines)

    def pay(
        self,
        order_id: str,
        channel: Channel = Channel.WECHAT,
        ending: str = "0000",
        window: int = 1,
    ) -> Pay:
        cash = 20000 if channel is Channel.CASH else 0
        terminal = f"{self.sp}T{window}"
        auth_code = code(channel, ending)
        return Pay(new_id(), terminal, self.window(window), order_id, channel, auth_code, cash)

    def refund(self, order_id: str, amount_fen: int) -> Refund:
        return Refund(new_id(), f"{self.sp}T1", self.window(1), order_id, amount_fen, "退费", "S1")

    async def stored(self, order_id: str) -> Order:
        snapshot = await self.store.order(order_id)
        assert snapshot is not None
        return Order.from_record(orjson.loads(snapshot))


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(small_config(service_points=1, windows=4))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


async def one(core: ServicePointCore, command: Any) -> Result:
    [result] = await core.submit([command])
    return result


def order_of(result: Result) -> dict[str, Any]:
    assert isinstance(result, (Done, Accepted)), result
    record: dict[str, Any] = orjson.loads(result.order)
    return record


async def settled(h: Harness, order_id: str) -> Order:
    return await eventually(
        lambda: h.stored(order_id),
        lambda o: o.in_flight() is None and not o.pending_refunds(),
    )


async def test_create_and_pay_journal_every_change_and_close_the_order(harness: Harness) -> None:
    core = await harness.core()
    created = order_of(await one(core, harness.create()))
    assert created["amount_fen"] == 12000 and created["state"] == "AWAITING_PAYMENT"
    assert created["order_id"] in harness.store.hashes[keys.open_orders(harness.sp)]
    assert isinstance(await one(core, harness.pay(created["order_id"])), Accepted)
    order = await settled(harness, created["order_id"])
    assert order.state is OrderState.PAID and invariant_violations(order) == []
    journal = await harness.store.journal(order.order_id)
    assert [orjson.loads(e)["v"] for e in journal] == list(range(1, order.version + 1))
    assert order.order_id not in harness.store.hashes[keys.open_orders(harness.sp)]
    outbox = harness.store.streams[keys.outbox(harness.sp)]
    assert [e["kind"] for e in outbox] == [b"ORDER_PAID"]


async def test_cash_is_paid_at_once_with_the_change_given(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    paid = order_of(await one(core, harness.pay(order_id, Channel.CASH)))
    assert paid["state"] == "PAID"
    assert paid["attempts"][0]["change_fen"] == 8000


async def test_a_replayed_request_returns_the_first_answer(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    first = await one(core, create)
    assert await one(core, create) == first
    order_id = order_of(first)["order_id"]
    pay = harness.pay(order_id)
    await one(core, pay)
    await settled(harness, order_id)
    replay = await one(core, pay)
    assert isinstance(replay, Done) and order_of(replay)["state"] == "PAID"
    assert len(harness.banks[Channel.WECHAT].trades()) == 1


async def test_concurrent_duplicates_take_effect_once(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    answers = await asyncio.gather(*(one(core, create) for _ in range(5)))
    assert len({order_of(a)["order_id"] for a in answers}) == 1
    pay = harness.pay(order_of(answers[0])["order_id"])
    results = await core.submit([pay, pay, pay])
    assert not any(isinstance(r, Rejected) for r in results)
    order = await settled(harness, pay.order_id)
    assert len(order.attempts) == 1 and order.state is OrderState.PAID


async def test_a_request_id_reused_with_other_parameters_is_refused(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    await one(core, create)
    other = CreateOrder(create.request_id, create.business_no, harness.window(2), "张三", LINES)
    result = await one(core, other)
    assert isinstance(result, Rejected) and result.code is ErrorCode.ALREADY_EXISTS


async def test_bad_input_is_refused_and_nothing_is_stored(harness: Harness) -> None:
    core = await harness.core()
    bad = harness.create(lines=(RequestedLine("NOPE", 1),))
    result = await one(core, bad)
    assert isinstance(result, Rejected) and result.code is ErrorCode.INVALID_ARGUMENT
    assert keys.request_claim(bad.request_id) not in harness.store.strings
    assert keys.business_case(bad.business_no) not in harness.store.strings
    assert harness.store.commits == 0


async def test_a_refused_payment_gives_its_claims_back(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    short = Pay(new_id(), f"{harness.sp}T1", harness.window(1), order_id, Channel.CASH, "", 100)
    result = await one(core, short)
    assert isinstance(result, Rejected) and "less than" in result.message
    assert keys.request_claim(short.request_id) not in harness.store.strings
    assert (await harness.stored(order_id)).state is OrderState.AWAITING_PAYMENT


async def test_one_open_order_per_business_case(harness: Harness) -> None:
    core = await harness.core()
    first = order_of(await one(core, harness.create(business_no="CASE-1")))["order_id"]
    again = await one(core, harness.create(business_no="CASE-1"))
    assert order_of(again)["order_id"] == first
    other = await one(core, harness.create(business_no="CASE-1", lines=LINES[:1]))
    assert isinstance(other, Rejected) and other.code is ErrorCode.FAILED_PRECONDITION
    await one(core, CancelOrder(new_id(), first, "withdrawn"))
    renewed = order_of(await one(core, harness.create(business_no="CASE-1", lines=LINES[:1])))
    assert renewed["order_id"] != first
    assert harness.store.strings[keys.business_case("CASE-1")] == renewed["order_id"].encode()


async def test_an_auth_code_is_single_use(harness: Harness) -> None:
    core = await harness.core()
    first = order_of(await one(core, harness.create(1)))["order_id"]
    second = order_of(await one(core, harness.create(2)))["order_id"]
    declined = harness.pay(first, ending="3333")
    await one(core, declined)
    await settled(harness, first)
    reused = Pay(
        new_id(),
        f"{harness.sp}T2",
        harness.window(2),
        second,
        Channel.WECHAT,
        declined.auth_code,
        0,
    )
    result = await one(core, reused)
    assert isinstance(result, Rejected) and "already used" in result.message


async def test_one_payment_in_flight_per_window(harness: Harness) -> None:
    core = await harness.core()
    first = order_of(await one(core, harness.create(1)))["order_id"]
    second = order_of(await one(core, harness.create(1)))["order_id"]
    assert isinstance(await one(core, harness.pay(first, ending="2222")), Accepted)
    busy = await one(core, harness.pay(second))
    assert isinstance(busy, Rejected) and "busy" in busy.message
    assert (await settled(harness, first)).attempts[0].state is AttemptState.REVERSED
    assert isinstance(await one(core, harness.pay(second)), Accepted)


async def test_a_terminal_pays_only_at_its_own_window(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    result = await one(core, harness.pay(order_id, window=2))
    assert isinstance(result, Rejected) and result.code is ErrorCode.PERMISSION_DENIED


async def test_a_card_refund_is_driven_to_the_provider_and_announced(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id))
    await settled(harness, order_id)
    refund = harness.refund(order_id, 5000)
    accepted = await one(core, refund)
    assert isinstance(accepted, Accepted) and accepted.refund_id
    order = await settled(harness, order_id)
    assert order.refund(accepted.refund_id).state is RefundState.SUCCEEDED
    outbox = harness.store.streams[keys.outbox(harness.sp)]
    assert [e["kind"] for e in outbox] == [b"ORDER_PAID", b"ORDER_REFUNDED"]
    replay = await one(core, refund)
    assert isinstance(replay, Done)
    assert len(order_of(replay)["refunds"]) == 1


async def test_a_cash_refund_is_done_at_the_counter(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id, Channel.CASH))
    done = await one(core, harness.refund(order_id, 2000))
    assert isinstance(done, Done)
    assert order_of(done)["refunds"][0]["state"] == RefundState.SUCCEEDED.value
    too_much = await one(core, harness.refund(order_id, 20000))
    # 12,000 fen paid (DOMAIN.md §3: a plate 10,000, two licences 1,000 each), 2,000 back.
    assert too_much == Rejected(
        ErrorCode.FAILED_PRECONDITION,
        f"refund of 20000 fen refused: 10000 fen of order {order_id} can still be refunded",
    )


async def test_a_new_incarnation_resumes_work_and_fences_the_old_one(harness: Harness) -> None:
    first = await harness.core()
    paying = order_of(await one(first, harness.create(1)))["order_id"]
    await one(first, harness.pay(paying, ending="1111"))
    await eventually(
        lambda: harness.stored(paying),
        lambda o: o.attempts[0].state is AttemptState.AWAITING_PAYER,
    )
    await first.stop()  # its drivers die mid-attempt, as in a crash
    second = await harness.core()
    assert second.status()["open_orders"] == 1
    assert (await settled(harness, paying)).state is OrderState.PAID
    stale = await asyncio.gather(one(first, harness.create(3)), return_exceptions=True)
    assert isinstance(stale[0], CommitRejected) and harness.fatal
    harness.fatal.clear()


async def test_the_fake_refuses_a_stale_version_and_writes_nothing_of_the_batch() -> None:
    store = MemoryStore()
    epoch = await store.take_over("SPX")
    batch = WriteBatch()
    batch.save_order("SPX", "SPX-A", 0, 1, b"snap1", [b"j1"], b"e")
    await store.commit(batch, {"SPX": epoch})
    stale = WriteBatch()
    stale.save_order("SPX", "SPX-A", 0, 2, b"snap2", [b"j2"], b"e")
    stale.mark_open("SPX", "SPX-A", "W1")
    with pytest.raises(CommitRejected, match="WPCONFLICT"):
        await store.commit(stale, {"SPX": epoch})
    assert await store.order("SPX-A") == b"snap1"
    assert await store.journal("SPX-A") == [b"j1"]
    assert await store.open_orders("SPX") == LiveOrders([], [])


class Recording(MetricsObserver):
    """The metrics observer, also keeping what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, ...]] = []

    def idempotency(self, command_type: str, result: str) -> None:
        super().idempotency(command_type, result)
        self.told.append(("idempotency", command_type, result))

    def attempt_ended(self, order: Order, attempt: Any) -> None:
        super().attempt_ended(order, attempt)
        self.told.append(("attempt", attempt.attempt_id, attempt.state.value))


async def test_the_observer_hears_each_ended_attempt_once_and_each_replay(
    harness: Harness,
) -> None:
    observer = Recording()
    core = await harness.core(observer)
    create = harness.create()
    order_id = order_of(await one(core, create))["order_id"]
    await one(core, create)
    accepted = await one(core, harness.pay(order_id))
    assert isinstance(accepted, Accepted)
    await settled(harness, order_id)
    await eventually(lambda: _async(observer.told), lambda told: len(told) == 2)
    assert observer.told == [
        ("idempotency", "CreateOrder", "replayed"),
        ("attempt", accepted.attempt_id, AttemptState.SUCCEEDED.value),
    ]


async def _async(value: Any) -> Any:
    return value


async def test_the_supervisor_forgets_ended_drivers_and_cancels_the_rest() -> None:
    supervisor = DriverSupervisor()
    forever = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("provider adapter bug")

    supervisor.start("A1", "attempt", fails())
    supervisor.start("R1", "refund", forever.wait())  # type: ignore[arg-type]
    await eventually(lambda: _async(len(supervisor)), lambda n: n == 1)
    await supervisor.stop()
    await eventually(lambda: _async(len(supervisor)), lambda n: n == 0)
