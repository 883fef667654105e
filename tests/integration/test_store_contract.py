"""One contract for both stores: every case runs against MemoryStore (the fake the unit
tier uses) and against RedisStore over a real Redis, so the fake cannot drift from
`commit.lua`.

The store-level cases hold the port's promises (claims, all-or-nothing commits, fencing);
the core-level cases run ServicePointCore over the store with the in-process sandbox
banks (no Ray): its idempotency, claims, one payment per window, refunds, expiry and
take-over. What a case looks at beyond the port goes through `Backend`, which reads the
same key either way. The Redis cases run on a single server and on a Redis Cluster
(3 masters with a replica each, tests/redis_cluster.py), where every commit, claim and
take-over waits for a replica. Redis-only behaviour (TTLs, the script cache, pub/sub) stays in
test_store.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import (
    Accepted,
    CancelOrder,
    CreateOrder,
    Done,
    Pay,
    Rejected,
)
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.order import Order, invariant_violations
from orchestrator.domain.states import AttemptState, Channel, OrderState, RefundState
from orchestrator.providers.engine import SystemClock
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.servicepoint.observer import MetricsObserver
from orchestrator.store import keys
from orchestrator.store.memory import MemoryStore
from orchestrator.store.port import CommitRejected, LiveOrders, StorePort
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.write_batch import WriteBatch
from tests.core_harness import LINES, Harness, one, order_of, settled
from tests.support import PROVIDER_CHANNELS, code, eventually, new_id, small_config, unique_prefix


class ContractStore(StorePort, Protocol):
    async def order(self, order_id: str) -> bytes | None: ...

    async def journal(self, order_id: str) -> Any: ...


class Backend(Protocol):
    """A store, and what a case may look at behind its port."""

    store: ContractStore

    async def get(self, key: str) -> bytes | None: ...

    async def exists(self, key: str) -> bool: ...

    async def open_ids(self, sp: str) -> set[str]: ...

    async def outbox_kinds(self, sp: str) -> list[bytes]: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.store = MemoryStore()

    async def get(self, key: str) -> bytes | None:
        return self.store.strings.get(key)

    async def exists(self, key: str) -> bool:
        s = self.store
        return any(key in kind for kind in (s.strings, s.hashes, s.lists, s.sets, s.streams))

    async def open_ids(self, sp: str) -> set[str]:
        return set(self.store.hashes.get(keys.open_orders(sp), {}))

    async def outbox_kinds(self, sp: str) -> list[bytes]:
        return [entry["kind"] for entry in self.store.streams.get(keys.outbox(sp), [])]


class RedisBackend:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.store = RedisStore(redis)

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self.redis.get(key)
        return value

    async def exists(self, key: str) -> bool:
        return bool(await self.redis.exists(key))

    async def open_ids(self, sp: str) -> set[str]:
        return {field.decode() for field in await self.redis.hkeys(keys.open_orders(sp))}

    async def outbox_kinds(self, sp: str) -> list[bytes]:
        return [fields[b"kind"] for _, fields in await self.redis.xrange(keys.outbox(sp))]


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The cluster's store waits for one replica of every write (store/replication.py)."""
    if request.param == "memory":
        return MemoryBackend()
    if request.param == "cluster":
        return RedisBackend(request.getfixturevalue("cluster_redis"))
    return RedisBackend(request.getfixturevalue("redis"))  # starts Redis only for these


# ---- the port ----------------------------------------------------------------------------


async def commit_order(store: StorePort, sp: str, epoch: int, prev: int, version: int) -> None:
    batch = WriteBatch()
    batch.save_order(sp, f"{sp}-A", prev, version, b"snap%d" % version, [b"j%d" % version], b"e")
    batch.mark_open(sp, f"{sp}-A", "W1")
    await store.commit(batch, {sp: epoch})


async def test_a_claim_inserts_once_and_keeps_the_holders_value(backend: Backend) -> None:
    key = keys.request_claim(new_id())
    first = backend.store.read_batch()
    read = first.claim(key, "fp-1", 60_000)
    await first.run()
    assert read.value is None  # inserted
    again = backend.store.read_batch()
    read = again.claim(key, "fp-2", 60_000)
    await again.run()
    assert read.value == b"fp-1"
    assert await backend.get(key) == b"fp-1"


async def test_a_release_deletes_only_the_holders_claim(backend: Backend) -> None:
    key = keys.business_case(new_id("B"))
    claim = backend.store.read_batch()
    claim.claim(key, "order-1", None)
    await claim.run()
    batch = WriteBatch()
    batch.release(key, "order-2")
    await backend.store.commit(batch, {})
    assert await backend.get(key) == b"order-1"
    batch = WriteBatch()
    batch.release(key, "order-1")
    await backend.store.commit(batch, {})
    assert await backend.get(key) is None


async def test_a_commit_writes_snapshot_journal_and_open_set(backend: Backend) -> None:
    store, sp = backend.store, unique_prefix()
    epoch = await store.take_over(sp)
    await commit_order(store, sp, epoch, 0, 1)
    await commit_order(store, sp, epoch, 1, 2)
    assert await store.order(f"{sp}-A") == b"snap2"
    assert list(await store.journal(f"{sp}-A")) == [b"j1", b"j2"]
    assert await store.open_orders(sp) == LiveOrders([b"snap2"], [])
    read = store.read_batch()
    snapshot = read.order(f"{sp}-A")
    await read.run()
    assert snapshot.value == b"snap2"


async def test_a_version_conflict_writes_nothing_of_the_batch(backend: Backend) -> None:
    store, sp = backend.store, unique_prefix()
    epoch = await store.take_over(sp)
    await commit_order(store, sp, epoch, 0, 1)
    stale = WriteBatch()
    stale.save_order(sp, f"{sp}-B", 0, 1, b"other", [b"o1"], b"e")  # fine on its own
    stale.save_order(sp, f"{sp}-A", 0, 2, b"snap2", [b"j2"], b"e")  # expects version 0
    stale.mark_open(sp, f"{sp}-B", "W1")
    with pytest.raises(CommitRejected, match="WPCONFLICT"):
        await store.commit(stale, {sp: epoch})
    assert await store.order(f"{sp}-A") == b"snap1"
    assert list(await store.journal(f"{sp}-A")) == [b"j1"]
    assert await store.order(f"{sp}-B") is None
    assert await backend.open_ids(sp) == {f"{sp}-A"}


async def test_an_actor_that_was_taken_over_can_no_longer_commit(backend: Backend) -> None:
    store, sp = backend.store, unique_prefix()
    old = await store.take_over(sp)
    new = await store.take_over(sp)
    assert new == old + 1
    with pytest.raises(CommitRejected, match="WPFENCED"):
        await commit_order(store, sp, old, 0, 1)
    assert await store.order(f"{sp}-A") is None
    await commit_order(store, sp, new, 0, 1)
    assert await store.order(f"{sp}-A") == b"snap1"


async def test_an_id_that_is_no_order_id_has_no_order(backend: Backend) -> None:
    for text in ("", "NODASH", "sp01-lower", "SP01-", "SP01-a.b"):
        assert await backend.store.order(text) is None


# ---- the service-point core over the store ---------------------------------------------


@pytest.fixture
async def harness(backend: Backend) -> AsyncIterator[Harness]:
    h = Harness(backend.store, small_config(prefix=unique_prefix(), service_points=1, windows=4))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


async def test_create_and_pay_journal_every_change_and_close_the_order(
    harness: Harness, backend: Backend
) -> None:
    core = await harness.core()
    created = order_of(await one(core, harness.create()))
    assert created["amount_fen"] == 12000 and created["state"] == "AWAITING_PAYMENT"
    assert await backend.open_ids(harness.sp) == {created["order_id"]}
    assert isinstance(await one(core, harness.pay(created["order_id"])), Accepted)
    order = await settled(harness, created["order_id"])
    assert order.state is OrderState.PAID and invariant_violations(order) == []
    journal = await harness.store.journal(order.order_id)
    assert [orjson.loads(e)["v"] for e in journal] == list(range(1, order.version + 1))
    assert await backend.open_ids(harness.sp) == set()
    assert await backend.outbox_kinds(harness.sp) == [b"ORDER_PAID"]


async def test_cash_is_paid_at_once_with_the_amount_received_and_the_change(
    harness: Harness,
) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    paid = order_of(await one(core, harness.pay(order_id, Channel.CASH)))
    assert paid["state"] == "PAID"
    assert paid["attempts"][0]["cash_received_fen"] == 20000
    assert paid["attempts"][0]["change_fen"] == 8000


async def test_a_replayed_request_returns_the_first_answer(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    first = await one(core, create)
    assert await one(core, create) == first
    order_id = order_of(first)["order_id"]
    pay = harness.pay(order_id)
    await one(core, pay)
    paid = await settled(harness, order_id)
    replay = await one(core, pay)
    assert isinstance(replay, Done) and order_of(replay)["state"] == "PAID"
    assert len(paid.attempts) == 1
    assert len(harness.banks[Channel.WECHAT].trades()) == 1


async def test_concurrent_duplicates_take_effect_once(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    answers = await asyncio.gather(*(one(core, create) for _ in range(10)))
    assert len({a.order for a in answers}) == 1  # type: ignore[union-attr]
    order_id = order_of(answers[0])["order_id"]
    pay = harness.pay(order_id)
    results = await asyncio.gather(
        *(one(core, pay) for _ in range(10)), core.submit([pay, pay, pay])
    )
    assert all(not isinstance(r, Rejected) for r in results[:10])
    assert not any(isinstance(r, Rejected) for r in results[10])  # type: ignore[union-attr]
    order = await settled(harness, order_id)
    assert len(order.attempts) == 1 and order.state is OrderState.PAID
    assert len(harness.banks[Channel.WECHAT].trades()) == 1
    assert len(await harness.store.journal(order_id)) == order.version


async def test_a_request_id_reused_with_other_parameters_is_refused(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    await one(core, create)
    other = CreateOrder(create.request_id, create.business_no, harness.window(2), "张三", LINES)
    result = await one(core, other)
    assert isinstance(result, Rejected) and result.code is ErrorCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    "command",
    [
        lambda h: h.create(lines=(RequestedLine("NOPE", 1),)),
        lambda h: h.create(lines=(RequestedLine("PLT-AUTO", 11),)),
        lambda h: h.create(lines=(RequestedLine("PLT-AUTO", 1, amount_fen=1),)),
        lambda h: h.create(lines=()),
        lambda h: CreateOrder(new_id(), new_id("B"), h.window(1), "", LINES),
        lambda h: CreateOrder(new_id(), "bad business no!", h.window(1), "p", LINES),
        lambda h: CreateOrder("", new_id("B"), h.window(1), "p", LINES),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    harness: Harness, command: Any, backend: Backend
) -> None:
    core = await harness.core()
    bad = command(harness)
    result = await one(core, bad)
    assert isinstance(result, Rejected) and result.code is ErrorCode.INVALID_ARGUMENT
    if bad.request_id:
        assert not await backend.exists(keys.request_claim(bad.request_id))
        assert not await backend.exists(keys.response(harness.sp, bad.request_id))
    assert not await backend.exists(keys.business_case(bad.business_no))
    assert await backend.open_ids(harness.sp) == set()
    assert not await backend.exists(keys.changes(harness.sp))  # no order was committed


async def test_a_payment_refused_after_its_claims_gives_them_back(
    harness: Harness, backend: Backend
) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    short = Pay(new_id(), f"{harness.sp}T1", harness.window(1), order_id, Channel.CASH, "", 100)
    result = await one(core, short)
    assert isinstance(result, Rejected) and "less than" in result.message
    assert not await backend.exists(keys.request_claim(short.request_id))
    assert (await harness.stored(order_id)).state is OrderState.AWAITING_PAYMENT


async def test_one_open_order_per_business_case(harness: Harness, backend: Backend) -> None:
    core = await harness.core()
    case = new_id("CASE")
    first = order_of(await one(core, harness.create(business_no=case)))["order_id"]
    again = await one(core, harness.create(business_no=case))  # new request id
    assert order_of(again)["order_id"] == first
    other = await one(core, harness.create(business_no=case, lines=LINES[:1]))
    assert isinstance(other, Rejected) and other.code is ErrorCode.FAILED_PRECONDITION
    cancelled = await one(core, CancelOrder(new_id(), first, "withdrawn"))
    assert order_of(cancelled)["state"] == "CANCELLED"
    renewed = order_of(await one(core, harness.create(business_no=case, lines=LINES[:1])))
    assert renewed["order_id"] != first
    assert await backend.get(keys.business_case(case)) == renewed["order_id"].encode()


async def test_an_auth_code_is_single_use(harness: Harness) -> None:
    core = await harness.core()
    first = order_of(await one(core, harness.create(1)))["order_id"]
    second = order_of(await one(core, harness.create(2)))["order_id"]
    auth_code = code(Channel.WECHAT, "3333")  # declined: the order stays payable
    await one(core, harness.pay(first, auth_code=auth_code))
    await settled(harness, first)
    reused = await one(core, harness.pay(second, window=2, auth_code=auth_code))
    assert isinstance(reused, Rejected) and "already used" in reused.message


async def test_one_payment_in_flight_per_window(harness: Harness) -> None:
    core = await harness.core()
    first = order_of(await one(core, harness.create(1)))["order_id"]
    second = order_of(await one(core, harness.create(1)))["order_id"]
    assert isinstance(await one(core, harness.pay(first, ending="2222")), Accepted)
    busy = await one(core, harness.pay(second))
    assert isinstance(busy, Rejected) and "busy" in busy.message
    order = await settled(harness, first)
    assert order.attempts[0].state is AttemptState.REVERSED
    assert isinstance(await one(core, harness.pay(second)), Accepted)  # free again


async def test_a_card_sale_answered_only_by_5xx_is_reversed_before_the_next_sale(
    harness: Harness,
) -> None:
    """A UnionPay sale that got only 5xx answers may still have been taken: it is
    reversed (冲正), and the window's next card sale waits until the reversal is done."""
    core = await harness.core()
    bank = harness.banks[Channel.UNIONPAY]
    first = order_of(await one(core, harness.create(1)))["order_id"]
    second = order_of(await one(core, harness.create(1)))["order_id"]
    bank.faults = {"reverse"}  # the reversal cannot get through for now
    try:
        assert isinstance(await one(core, harness.pay(first, Channel.UNIONPAY, "6666")), Accepted)
        stuck = await eventually(
            lambda: harness.stored(first),
            lambda o: o.attempts[0].state is AttemptState.REVERSING,
        )
        assert stuck.state is OrderState.PAYING  # not declined on a guess
        busy = await one(core, harness.pay(second, Channel.UNIONPAY))
        assert isinstance(busy, Rejected) and "busy" in busy.message
    finally:
        bank.faults = set()
    done = await settled(harness, first)
    assert done.attempts[0].state is AttemptState.REVERSED
    trade = bank.trade(done.attempts[0].attempt_id)
    assert trade is not None and trade.state.value == "CLOSED"  # closed: never payable later
    assert isinstance(await one(core, harness.pay(second, Channel.UNIONPAY)), Accepted)


async def test_a_terminal_pays_only_at_its_own_window(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    result = await one(core, harness.pay(order_id, window=2))
    assert isinstance(result, Rejected) and result.code is ErrorCode.PERMISSION_DENIED


async def test_a_card_refund_is_driven_to_the_provider_and_announced(
    harness: Harness, backend: Backend
) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id))
    await settled(harness, order_id)
    refund = harness.refund(order_id, 5000)
    accepted = await one(core, refund)
    assert isinstance(accepted, Accepted) and accepted.refund_id
    order = await settled(harness, order_id)
    assert order.refund(accepted.refund_id).state is RefundState.SUCCEEDED
    kinds = await backend.outbox_kinds(harness.sp)
    assert kinds == [b"ORDER_PAID", b"ORDER_REFUNDED"]
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


async def test_a_new_incarnation_resumes_unfinished_attempts_and_fences_the_old_one(
    harness: Harness,
) -> None:
    first = await harness.core()
    paying = order_of(await one(first, harness.create(1)))["order_id"]
    waiting = order_of(await one(first, harness.create(2)))["order_id"]
    await one(first, harness.pay(paying, ending="1111"))
    await one(first, harness.pay(waiting, window=2, ending="2222"))
    await eventually(
        lambda: harness.stored(paying), lambda o: o.attempts[0].state is AttemptState.AWAITING_PAYER
    )
    await first.stop()  # its drivers die mid-attempt, as in a crash
    second = await harness.core()
    assert second.status()["open_orders"] >= 1
    assert (await settled(harness, paying)).state is OrderState.PAID
    reversed_ = await settled(harness, waiting)
    assert reversed_.attempts[0].state is AttemptState.REVERSED
    assert reversed_.state is OrderState.AWAITING_PAYMENT
    # The first incarnation was fenced off: whatever it still tries is refused.
    stale = await asyncio.gather(one(first, harness.create(3)), return_exceptions=True)
    assert isinstance(stale[0], CommitRejected) and harness.fatal
    harness.fatal.clear()


class ShiftedClock(SystemClock):
    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(min(seconds, 0.05))


async def test_unpaid_orders_expire_at_the_end_of_the_business_day(harness: Harness) -> None:
    clock = ShiftedClock()
    core = await harness.core(clock=clock)
    order = order_of(await one(core, harness.create()))
    clock.offset_ms = order["expires_at"] - clock.now_ms() + 1
    expired = await eventually(
        lambda: harness.stored(order["order_id"]), lambda o: o.state is OrderState.EXPIRED
    )
    assert not expired.is_open
    refused = await one(core, harness.pay(order["order_id"]))
    assert isinstance(refused, Rejected) and refused.code is ErrorCode.FAILED_PRECONDITION


async def test_a_case_open_at_another_point_fails_alone_not_its_batch(backend: Backend) -> None:
    config = small_config(prefix=unique_prefix(), service_points=2, windows=2)
    first, second = (sp.id for sp in config.deployment.service_points)
    h = Harness(backend.store, config)
    providers = {ch: SandboxProvider(ch, h.banks[ch]) for ch in PROVIDER_CHANNELS}
    cores = [
        ServicePointCore([sp], config, backend.store, providers, on_fatal=h.fatal.append)
        for sp in (first, second)
    ]
    for core in cores:
        await core.start()
    try:
        case = new_id("B")
        opened = await one(cores[0], CreateOrder(new_id(), case, f"{first}W1", "张三", LINES))
        assert isinstance(opened, Done)
        elsewhere, fine = await cores[1].submit(
            [
                CreateOrder(new_id(), case, f"{second}W1", "张三", LINES),
                CreateOrder(new_id(), new_id("B"), f"{second}W2", "李四", LINES),
            ]
        )
        assert isinstance(elsewhere, Rejected)
        assert elsewhere.code is ErrorCode.FAILED_PRECONDITION and first in elsewhere.message
        assert order_of(fine)["state"] == "AWAITING_PAYMENT"
        # the case still belongs to the first point's order
        owner = await backend.get(keys.business_case(case))
        assert owner is not None and owner.decode() == order_of(opened)["order_id"]
    finally:
        for core in cores:
            await core.stop()
    assert h.fatal == []


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


async def _async(value: Any) -> Any:
    return value


async def test_the_observer_hears_each_ended_attempt_once_and_each_replay(
    harness: Harness,
) -> None:
    observer = Recording()
    core = await harness.core(observer=observer)
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
