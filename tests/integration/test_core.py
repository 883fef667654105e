"""ServicePointCore against a real Redis and the in-process sandbox (no Ray): the whole
payment path of one actor, its idempotency, its invariants and its recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import Config
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import (
    Accepted,
    CancelOrder,
    CreateOrder,
    Done,
    Pay,
    Rejected,
    Result,
)
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.order import Order, invariant_violations
from orchestrator.domain.states import AttemptState, Channel, OrderState
from orchestrator.providers.engine import SystemClock
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store import keys
from orchestrator.store.redis_store import RedisStore
from tests.support import PROVIDER_CHANNELS, code, eventually, new_id, small_config, unique_prefix

LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 2))


class Harness:
    """One deployment (unique service points) with one or more core incarnations."""

    def __init__(self, redis: Redis, config: Config) -> None:
        self.redis = redis
        self.config = config
        self.sp = config.deployment.service_points[0].id
        self.banks = {
            ch: SandboxBank(ch.value, Timing(time_scale=config.settings.time_scale))
            for ch in PROVIDER_CHANNELS
        }
        self.fatal: list[BaseException] = []
        self.cores: list[ServicePointCore] = []

    async def core(self, clock: Any = None) -> ServicePointCore:
        providers = {ch: SandboxProvider(ch, self.banks[ch]) for ch in PROVIDER_CHANNELS}
        core = ServicePointCore(
            [sp.id for sp in self.config.deployment.service_points],
            self.config,
            RedisStore(self.redis),
            providers,
            clock=clock,
            on_fatal=self.fatal.append,
        )
        await core.start()
        self.cores.append(core)
        return core

    def window(self, n: int = 1) -> str:
        return f"{self.sp}W{n}"

    def create(
        self,
        window: int = 1,
        *,
        business_no: str | None = None,
        lines: tuple[RequestedLine, ...] = LINES,
    ) -> CreateOrder:
        business_no = business_no or new_id("B")
        return CreateOrder(new_id(), business_no, self.window(window), "张三", lines)

    def pay(
        self,
        order_id: str,
        channel: Channel = Channel.WECHAT,
        ending: str = "0000",
        *,
        window: int = 1,
        auth_code: str | None = None,
    ) -> Pay:
        if auth_code is None:
            auth_code = code(channel, ending)
        cash = 20000 if channel is Channel.CASH else 0
        terminal = f"{self.sp}T{window}"
        return Pay(new_id(), terminal, self.window(window), order_id, channel, auth_code, cash)

    async def stored(self, order_id: str) -> Order:
        snapshot = await RedisStore(self.redis).order(order_id)
        assert snapshot is not None
        return Order.from_record(orjson.loads(snapshot))


@pytest.fixture
async def harness(redis: Redis) -> AsyncIterator[Harness]:
    h = Harness(redis, small_config(prefix=unique_prefix(), service_points=1, windows=4))
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
        lambda o: o.in_flight() is None and o.state is not OrderState.PAYING,
    )


async def test_create_pay_and_every_change_is_journaled(harness: Harness) -> None:
    core = await harness.core()
    created = order_of(await one(core, harness.create()))
    assert created["amount_fen"] == 12000 and created["state"] == "AWAITING_PAYMENT"
    accepted = await one(core, harness.pay(created["order_id"]))
    assert isinstance(accepted, Accepted)
    order = await settled(harness, created["order_id"])
    assert order.state is OrderState.PAID
    assert invariant_violations(order) == []
    journal = await RedisStore(harness.redis).journal(order.order_id)
    assert [orjson.loads(e)["v"] for e in journal] == list(range(1, order.version + 1))
    assert await harness.redis.hget(keys.open_orders(harness.sp), order.order_id) is None


async def test_cash_is_recorded_with_the_amount_received(harness: Harness) -> None:
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
    order = await settled(harness, order_id)
    assert len(order.attempts) == 1 and order.state is OrderState.PAID
    assert len(harness.banks[Channel.WECHAT].trades()) == 1
    journal = await RedisStore(harness.redis).journal(order_id)
    assert len(journal) == order.version


async def test_a_key_reused_with_other_parameters_is_refused(harness: Harness) -> None:
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
async def test_bad_input_is_refused_and_nothing_is_stored(harness: Harness, command: Any) -> None:
    core = await harness.core()
    bad = command(harness)
    result = await one(core, bad)
    assert isinstance(result, Rejected) and result.code is ErrorCode.INVALID_ARGUMENT
    if bad.request_id:
        assert await harness.redis.exists(keys.request_claim(bad.request_id)) == 0
        assert await harness.redis.exists(keys.response(harness.sp, bad.request_id)) == 0
    assert await harness.redis.exists(keys.business_case(bad.business_no)) == 0
    assert await harness.redis.hlen(keys.open_orders(harness.sp)) == 0


async def test_a_payment_refused_after_its_claims_gives_them_back(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    short = Pay(new_id(), f"{harness.sp}T1", harness.window(1), order_id, Channel.CASH, "", 100)
    result = await one(core, short)
    assert isinstance(result, Rejected) and "less than" in result.message
    assert await harness.redis.exists(keys.request_claim(short.request_id)) == 0
    assert (await harness.stored(order_id)).state is OrderState.AWAITING_PAYMENT


async def test_one_open_order_per_business_case(harness: Harness) -> None:
    core = await harness.core()
    first = await one(core, harness.create(business_no="CASE-1"))
    again = await one(core, harness.create(business_no="CASE-1"))  # new request id
    assert order_of(again)["order_id"] == order_of(first)["order_id"]
    other = await one(
        core, harness.create(business_no="CASE-1", lines=(RequestedLine("EXM-K1", 1),))
    )
    assert isinstance(other, Rejected) and other.code is ErrorCode.FAILED_PRECONDITION
    cancelled = await one(core, CancelOrder(new_id(), order_of(first)["order_id"], "withdrawn"))
    assert order_of(cancelled)["state"] == "CANCELLED"
    renewed = await one(
        core, harness.create(business_no="CASE-1", lines=(RequestedLine("EXM-K1", 1),))
    )
    assert order_of(renewed)["order_id"] != order_of(first)["order_id"]
    assert await RedisStore(harness.redis).order_of_case("CASE-1") == renewed.order  # type: ignore[union-attr]


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


async def test_a_new_incarnation_resumes_unfinished_attempts(harness: Harness) -> None:
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
    assert (await settled(harness, paying)).state is OrderState.PAID
    reversed_ = await settled(harness, waiting)
    assert reversed_.attempts[0].state is AttemptState.REVERSED
    assert reversed_.state is OrderState.AWAITING_PAYMENT
    # The first incarnation was fenced off: whatever it still tries is refused.
    stale = await asyncio.gather(one(first, harness.create(3)), return_exceptions=True)
    assert isinstance(stale[0], Exception) and harness.fatal
    harness.fatal.clear()
    assert second.status()["open_orders"] >= 1


class ShiftedClock(SystemClock):
    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(min(seconds, 0.05))


async def test_unpaid_orders_expire_at_the_end_of_the_business_day(harness: Harness) -> None:
    clock = ShiftedClock()
    core = await harness.core(clock)
    order = order_of(await one(core, harness.create()))
    clock.offset_ms = order["expires_at"] - clock.now_ms() + 1
    expired = await eventually(
        lambda: harness.stored(order["order_id"]), lambda o: o.state is OrderState.EXPIRED
    )
    assert not expired.is_open
    refused = await one(core, harness.pay(order["order_id"]))
    assert isinstance(refused, Rejected) and refused.code is ErrorCode.FAILED_PRECONDITION


async def test_a_case_open_at_another_point_fails_alone_not_its_batch(redis: Redis) -> None:
    config = small_config(prefix=unique_prefix(), service_points=2, windows=2)
    first, second = (sp.id for sp in config.deployment.service_points)
    h = Harness(redis, config)
    providers = {ch: SandboxProvider(ch, h.banks[ch]) for ch in PROVIDER_CHANNELS}
    cores = [
        ServicePointCore([sp], config, RedisStore(redis), providers, on_fatal=h.fatal.append)
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
        owner = await redis.get(keys.business_case(case))
        assert owner is not None and owner.decode() == order_of(opened)["order_id"]
    finally:
        for core in cores:
            await core.stop()
    assert h.fatal == []
