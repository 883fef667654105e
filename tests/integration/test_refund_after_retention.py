"""Refunds of orders that have left Redis after the retention: the service-point core
recalls the order from the record, puts it back into Redis (fenced: of two reloads one
wins) and refunds it through the same checks (real Redis, a real PostgreSQL, the
drainer and the core; no Ray)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import Config
from orchestrator.domain.commands import Accepted, CreateOrder, Pay, RefundOrder, Rejected, Result
from orchestrator.domain.errors import ErrorCode, Unavailable
from orchestrator.domain.order import Order
from orchestrator.domain.states import Channel, OrderState, RefundState
from orchestrator.metrics import ORDER_RECALLS
from orchestrator.receipts.issuer import ReceiptIssuer
from orchestrator.record.consistency import compare
from orchestrator.record.drainer import Drainer
from orchestrator.record.reader import RecordReader
from orchestrator.record.recorded_reads import RecordedReads
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.servicepoint.observer import MetricsObserver
from orchestrator.servicepoint.recall import OrderRecall
from orchestrator.store import keys
from orchestrator.store.port import RecordedOrder
from orchestrator.store.reads import RedisOrderReads
from orchestrator.store.receipts import ReceiptStore
from orchestrator.store.redis_store import RedisStore
from tests.core_harness import LINES, order_of
from tests.integration.test_record import caught_up, pool_of, record_config, running
from tests.support import PROVIDER_CHANNELS, code, eventually, new_id


class Office:
    """One service point's cores (each with the record behind it), the drainer, and
    the sandbox banks they share."""

    def __init__(self, redis: Redis, pool: AsyncConnectionPool[Any], config: Config) -> None:
        self.redis = redis
        self.pool = pool
        self.config = config
        self.points = [sp.id for sp in config.deployment.service_points]
        self.sp = self.points[0]
        self.banks = {
            ch: SandboxBank(ch.value, Timing(time_scale=config.settings.time_scale))
            for ch in PROVIDER_CHANNELS
        }
        self.fatal: list[BaseException] = []
        self.cores: list[ServicePointCore] = []
        self.drainer = Drainer(redis, pool, config)

    async def core(self) -> ServicePointCore:
        """A new actor incarnation: it takes the service points over from the last."""
        for older in self.cores:
            await older.stop()
        providers = {ch: SandboxProvider(ch, self.banks[ch]) for ch in PROVIDER_CHANNELS}
        core = ServicePointCore(
            self.points,
            self.config,
            RedisStore(self.redis),
            providers,
            on_fatal=self.fatal.append,
            record=RecordReader(self.pool),
        )
        await core.start()
        self.cores.append(core)
        return core

    def names(self, order_id: str) -> list[str]:
        return [keys.order(self.sp, order_id), keys.journal(self.sp, order_id)]

    async def paid(self, core: ServicePointCore) -> str:
        """A WeChat order of 120 yuan, paid."""
        created = CreateOrder(new_id(), new_id("B"), f"{self.sp}W1", "张三", LINES)
        order_id: str = order_of(await one(core, created))["order_id"]
        pay = Pay(new_id(), f"{self.sp}T1", f"{self.sp}W1", order_id, Channel.WECHAT,
                  code(Channel.WECHAT), 0)  # fmt: skip
        await one(core, pay)
        order = await self.settled(order_id)
        assert (order.state, order.amount_fen) == (OrderState.PAID, 12000)
        return order_id

    def refund(self, order_id: str, amount_fen: int) -> RefundOrder:
        return RefundOrder(new_id(), f"{self.sp}T1", f"{self.sp}W1", order_id, amount_fen,
                           "考试取消", f"{self.sp}S")  # fmt: skip

    async def stored(self, order_id: str) -> Order | None:
        snapshot = await RedisStore(self.redis).order(order_id)
        return None if snapshot is None else Order.from_record(orjson.loads(snapshot))

    async def settled(self, order_id: str) -> Order:
        order = await eventually(
            lambda: self.stored(order_id),
            lambda o: (
                o is not None
                and o.in_flight() is None
                and o.state is not OrderState.PAYING
                and not o.pending_refunds()
            ),
            within=30,
        )
        assert order is not None
        return order

    async def leaves_redis(self, order_id: str) -> None:
        """Drained final, its keys are given the retention; then they are gone (deleted
        here rather than waited for)."""

        async def ttls() -> list[int]:  # given just after the drainer acknowledged
            return [await self.redis.pttl(name) for name in self.names(order_id)]

        await caught_up(self.drainer)
        given = await eventually(ttls, lambda ms: all(t > 0 for t in ms), within=30)
        assert all(t <= self.drainer.retention_ms for t in given), given
        await self.redis.delete(*self.names(order_id))

    async def agrees(self, order_id: str) -> Order:
        """The record equals Redis (snapshot, journal, attempts, refunds); the journal's
        versions run 1..version without a gap in both."""
        await caught_up(self.drainer)
        order = await self.stored(order_id)
        assert order is not None
        async with await psycopg.AsyncConnection.connect(self.pool.conninfo) as conn:
            comparison = await compare(self.redis, conn, self.points)
            journal = await conn.execute(
                "SELECT version FROM journal WHERE order_id = %s ORDER BY version", (order_id,)
            )
            recorded_versions = [v for (v,) in await journal.fetchall()]
            refunds = await conn.execute(
                "SELECT amount_fen, state FROM refunds WHERE order_id = %s ORDER BY created_at_ms",
                (order_id,),
            )
            recorded_refunds = await refunds.fetchall()
        assert comparison.differences == []
        entries = await RedisStore(self.redis).journal(order_id)
        live_versions = [orjson.loads(e)["v"] for e in entries]
        assert live_versions == recorded_versions == list(range(1, order.version + 1))
        assert recorded_refunds == [(r.amount_fen, r.state.value) for r in order.refunds]
        return order

    def provider_refunds(self) -> list[int]:
        bank = self.banks[Channel.WECHAT]
        return [r.amount_fen for trade in bank.trades() for r in trade.refunds]


@asynccontextmanager
async def office(redis: Redis, database_url: str) -> AsyncIterator[Office]:
    # A long retention: the test deletes the keys itself once it has seen them given it.
    async with pool_of(database_url) as pool:
        o = Office(redis, pool, record_config(retention_s=3600))
        try:
            async with running(o.drainer):
                yield o
        finally:
            for core in o.cores:
                await core.stop()
    assert o.fatal == []


async def one(core: ServicePointCore, command: Any) -> Result:
    [result] = await core.submit([command])
    return result


def recalls() -> dict[str, float]:
    return {
        outcome: ORDER_RECALLS.labels(outcome)._value.get()
        for outcome in ("recalled", "already_back", "not_in_record", "record_unavailable")
    }


async def test_an_order_gone_from_redis_is_refunded_twice_and_the_record_agrees(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        order_id = await o.paid(core)
        await o.leaves_redis(order_id)
        before = recalls()

        # The same incarnation still remembers the order: it must not act on that copy.
        first = await one(core, o.refund(order_id, 3000))
        assert isinstance(first, Accepted), first
        order = await o.settled(order_id)
        assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 3000)
        assert recalls()["recalled"] == before["recalled"] + 1
        await o.agrees(order_id)
        # Final and drained again: it is given the retention again.
        await eventually(lambda: o.redis.pttl(o.names(order_id)[0]), lambda ms: ms > 0)

        await o.leaves_redis(order_id)
        core = await o.core()  # a new incarnation, nothing in memory
        second = await one(core, o.refund(order_id, 4000))
        assert isinstance(second, Accepted), second
        order = await o.settled(order_id)
        assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 7000)
        await o.agrees(order_id)

        # 50 yuan are left: more is refused, exactly that is refunded.
        await o.leaves_redis(order_id)
        too_much = await one(core, o.refund(order_id, 5001))
        assert isinstance(too_much, Rejected) and too_much.code is ErrorCode.FAILED_PRECONDITION
        rest = await one(core, o.refund(order_id, 5000))
        assert isinstance(rest, Accepted), rest
        order = await o.settled(order_id)
        assert (order.state, order.refunded_fen) == (OrderState.REFUNDED, 12000)
        assert [r.state for r in order.refunds] == [RefundState.SUCCEEDED] * 3
        assert sorted(o.provider_refunds()) == [3000, 4000, 5000]
        await o.agrees(order_id)


async def test_concurrent_refunds_of_a_gone_order_reload_it_once_and_refund_within_the_paid(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        order_id = await o.paid(core)
        await o.leaves_redis(order_id)
        core = await o.core()
        o.banks[Channel.WECHAT].faults.add("refund")  # refunds stay pending, reserved
        before = recalls()

        answers = await asyncio.gather(
            *(one(core, o.refund(order_id, 5000)) for _ in range(4))
        )  # each its own batch: all four find the order gone and ask for it together
        accepted = [a for a in answers if isinstance(a, Accepted)]
        refused = [a for a in answers if isinstance(a, Rejected)]
        assert len(accepted) == 2 and len(refused) == 2
        assert {r.code for r in refused} == {ErrorCode.FAILED_PRECONDITION}
        after = recalls()
        assert after["recalled"] == before["recalled"] + 1
        assert after["already_back"] == before["already_back"]

        o.banks[Channel.WECHAT].faults.clear()
        order = await o.settled(order_id)
        assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 10000)
        assert sorted(o.provider_refunds()) == [5000, 5000]
        await o.agrees(order_id)


class GatedRecord:
    """The record, held until both readers have read it: two reloads race to put the
    order back, as an actor and another process would."""

    def __init__(self, record: RecordReader, readers: int) -> None:
        self._record = record
        self._read = asyncio.Barrier(readers)

    async def recorded_order(self, order_id: str) -> RecordedOrder | None:
        found = await self._record.recorded_order(order_id)
        await self._read.wait()
        return found


class Outcomes(MetricsObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def recalled(self, outcome: str) -> None:
        self.seen.append(outcome)


async def test_two_reloads_of_the_same_gone_order_only_one_wins(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        order_id = await o.paid(core)
        expected = await o.stored(order_id)
        await o.leaves_redis(order_id)
        gated = GatedRecord(RecordReader(o.pool), readers=2)
        observers = [Outcomes(), Outcomes()]
        reloads = [
            OrderRecall(RedisStore(redis), gated, o.drainer.retention_ms, observer)
            for observer in observers
        ]
        reads = await asyncio.gather(*(r.recall(order_id) for r in reloads))
        assert sorted(observers[0].seen + observers[1].seen) == ["already_back", "recalled"]
        assert reads[0].value == reads[1].value and reads[0].value is not None
        back = Order.from_record(orjson.loads(reads[0].value))
        assert expected is not None and back.to_record() == expected.to_record()
        entries = await RedisStore(redis).journal(order_id)  # once, not twice
        assert [orjson.loads(e)["v"] for e in entries] == list(range(1, back.version + 1))
        ttls = [await redis.pttl(name) for name in o.names(order_id)]
        assert all(0 < ms <= o.drainer.retention_ms for ms in ttls)  # closed: leaves again
        assert await redis.hget(keys.open_orders(o.sp), order_id) is None  # closed: not open


async def test_an_unknown_order_is_not_found_and_nothing_is_stored(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        unknown = f"{o.sp}-{'A' * 14}"
        before = recalls()
        refund = o.refund(unknown, 1000)
        answer = await one(core, refund)
        assert isinstance(answer, Rejected) and answer.code is ErrorCode.NOT_FOUND
        assert recalls()["not_in_record"] == before["not_in_record"] + 1
        assert await redis.exists(*o.names(unknown)) == 0
        assert await redis.hget(keys.open_orders(o.sp), unknown) is None
        # The request claimed nothing that stays: the same request id may be used again.
        assert await redis.exists(keys.request_claim(refund.request_id)) == 0
        assert await redis.exists(keys.response(o.sp, refund.request_id)) == 0
        assert o.provider_refunds() == []


async def test_a_refund_of_a_gone_order_marks_its_receipt_never_a_second_one(
    own_redis: Redis, database_url: str
) -> None:
    redis = own_redis
    async with office(redis, database_url) as o:
        issuer = ReceiptIssuer(redis, o.config, b"k" * 32)
        issuing = asyncio.create_task(issuer.run())
        try:
            core = await o.core()
            order_id = await o.paid(core)
            reader = RecordReader(o.pool)
            stored = await eventually(lambda: reader.receipt_of_order(order_id), bool, within=60)
            assert stored is not None
            receipt = orjson.loads(stored)
            code_, number = receipt["receipt_code"], receipt["receipt_no"]
            await o.leaves_redis(order_id)
            receipt_keys = [keys.receipt_of_order(order_id), keys.receipt(code_, number)]

            async def receipt_ttls() -> list[int]:
                return [await redis.pttl(name) for name in receipt_keys]

            await eventually(receipt_ttls, lambda ms: all(t > 0 for t in ms), within=30)
            await redis.delete(*receipt_keys)  # gone with the order

            assert isinstance(await one(core, o.refund(order_id, 3000)), Accepted)
            await o.settled(order_id)

            async def marked() -> dict[str, Any] | None:
                live = await ReceiptStore(redis).of_order(order_id)
                return None if live is None else orjson.loads(live)

            again = await eventually(marked, lambda r: r is not None and r["refunded_fen"] > 0)
            assert again is not None
            assert (again["receipt_code"], again["receipt_no"]) == (code_, number)
            assert again["status"] == "PARTIALLY_REFUNDED" and again["refunded_fen"] == 3000
            assert issuer.issued == 1 and await ReceiptStore(redis).last_number(code_) == 1
        finally:
            issuer.stop()
            await asyncio.wait_for(issuing, 30)
        await o.agrees(order_id)
        async with await psycopg.AsyncConnection.connect(o.pool.conninfo) as conn:
            rows = await conn.execute(
                "SELECT receipt_no, refunded_fen FROM receipts WHERE order_id = %s", (order_id,)
            )
            assert await rows.fetchall() == [(number, 3000)]


async def test_the_front_door_finds_an_old_order_in_the_record_or_says_unavailable(
    redis: Redis, database_url: str
) -> None:
    """Before it checks the supervisor's PIN, the front door reads the order it
    names: an order gone from Redis is found in the record, and while the record
    cannot be read the answer is UNAVAILABLE, never NOT_FOUND."""
    async with office(redis, database_url) as o:
        core = await o.core()
        order_id = await o.paid(core)
        await o.leaves_redis(order_id)
        store = RecordedReads(RedisOrderReads(redis), RecordReader(o.pool))
        assert await store.order_to_refund(order_id) is not None
        assert await store.order_to_refund(f"{o.sp}-{'A' * 14}") is None
    away: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "postgresql://nobody@127.0.0.1:1/none", min_size=1, open=False, timeout=0.5
    )
    await away.open(wait=False)
    try:
        with pytest.raises(Unavailable, match="retry with the same request_id"):
            await RecordedReads(RedisOrderReads(redis), RecordReader(away)).order_to_refund(
                order_id
            )
    finally:
        await away.close(timeout=1)
