"""An order recalled from the record is held against its hashed journal first: a
snapshot changed in PostgreSQL (a refund erased, a channel turned to cash) is refused
with FAILED_PRECONDITION, nothing goes back into Redis, and no money moves (real Redis,
a real PostgreSQL, the drainer and the core; no Ray)."""

from __future__ import annotations

import psycopg
from redis.asyncio import Redis

from orchestrator.domain.commands import CreateOrder, Done, Pay, Rejected
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.states import Channel
from orchestrator.metrics import ORDER_RECALLS
from tests.core_harness import LINES, order_of
from tests.integration.test_record import caught_up
from tests.integration.test_refund_after_retention import Office, office, one
from tests.support import new_id


def mismatches() -> float:
    return float(ORDER_RECALLS.labels("record_mismatch")._value.get())


async def tamper(database_url: str, sql: str, order_id: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql, (order_id,))


async def refunds_recorded(o: Office, order_id: str) -> list[tuple[int, str]]:
    await caught_up(o.drainer)
    async with await psycopg.AsyncConnection.connect(o.pool.conninfo) as conn:
        rows = await conn.execute(
            "SELECT amount_fen, state FROM refunds WHERE order_id = %s ORDER BY created_at_ms",
            (order_id,),
        )
        return [(amount, state) for amount, state in await rows.fetchall()]


async def test_a_refunded_cash_order_whose_snapshot_was_reset_is_not_refunded_again(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        created = CreateOrder(new_id(), new_id("B"), f"{o.sp}W1", "李四", LINES)
        order_id = order_of(await one(core, created))["order_id"]
        pay = Pay(new_id(), f"{o.sp}T1", f"{o.sp}W1", order_id, Channel.CASH, "", 20000)
        assert isinstance(await one(core, pay), Done)
        assert isinstance(await one(core, o.refund(order_id, 12000)), Done)
        await o.leaves_redis(order_id)
        # The DBA makes the refunded order look paid and never refunded.
        await tamper(
            database_url,
            "UPDATE orders SET snapshot = jsonb_set(jsonb_set(jsonb_set(snapshot,"
            " '{refunded_fen}', '0'), '{refunds}', '[]'), '{state}', '\"PAID\"')"
            " WHERE order_id = %s",
            order_id,
        )
        before = mismatches()

        core = await o.core()  # nothing in memory: the order must come from the record
        again = await one(core, o.refund(order_id, 12000))
        assert isinstance(again, Rejected), again
        assert again.code is ErrorCode.FAILED_PRECONDITION
        assert "disagrees with its journal" in again.message
        assert "refunded_fen 0, the journal says 12000" in again.message
        assert mismatches() == before + 1
        assert await o.stored(order_id) is None  # nothing was put back
        assert await refunds_recorded(o, order_id) == [(12000, "SUCCEEDED")]


async def test_a_wechat_payment_whose_snapshot_says_cash_is_not_refunded_in_cash(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        order_id = await o.paid(core)  # WeChat, 120 yuan
        await o.leaves_redis(order_id)
        await tamper(
            database_url,
            "UPDATE orders SET snapshot = jsonb_set(snapshot, '{attempts,0,channel}',"
            " '\"CASH\"') WHERE order_id = %s",
            order_id,
        )
        before = mismatches()

        core = await o.core()
        refund = await one(core, o.refund(order_id, 12000))
        assert isinstance(refund, Rejected), refund
        assert refund.code is ErrorCode.FAILED_PRECONDITION
        assert "channel 'CASH', the journal says 'WECHAT'" in refund.message
        assert mismatches() == before + 1
        assert await o.stored(order_id) is None
        assert await refunds_recorded(o, order_id) == []
        assert o.provider_refunds() == []


async def test_an_untouched_order_still_comes_back_and_its_refund_entry_names_the_channel(
    redis: Redis, database_url: str
) -> None:
    async with office(redis, database_url) as o:
        core = await o.core()
        order_id = await o.paid(core)
        await o.leaves_redis(order_id)
        before = mismatches()
        core = await o.core()
        await one(core, o.refund(order_id, 2000))
        order = await o.settled(order_id)
        assert order.refunded_fen == 2000
        assert mismatches() == before
        await caught_up(o.drainer)
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            rows = await conn.execute(
                "SELECT entry->'refund'->>'channel' FROM journal"
                " WHERE order_id = %s AND entry ? 'refund'",
                (order_id,),
            )
            assert {channel for (channel,) in await rows.fetchall()} == {"WECHAT"}
