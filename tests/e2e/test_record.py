"""The record in the deployment: the drainer actor fills PostgreSQL, survives kill -9,
and the front door answers from the record for orders that have left Redis."""

from __future__ import annotations

import asyncio
import os
import signal

import psycopg
from redis.asyncio import Redis

from actors import runtime
from orchestrator.domain import ids
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.record.consistency import compare
from orchestrator.store import keys
from tests.e2e.conftest import Deployed
from tests.support import eventually


async def paid_in_cash(deployed: Deployed) -> pb.Order:
    order = await deployed.create(deployed.window())
    terminal = deployed.terminal_for(deployed.terminal_of(order.window_id))
    paid = await terminal.Pay(deployed.pay_request(order, Channel.CASH), timeout=10)
    assert paid.state == pb.PAID
    return paid


async def recorded(deployed: Deployed, sql: str, *args: object) -> int:
    async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
        row = await (await conn.execute(sql, args)).fetchone()
    return int(row[0]) if row else 0


async def test_get_order_and_receipt_answer_from_the_record_once_redis_let_go(
    deployed: Deployed,
) -> None:
    paid = await paid_in_cash(deployed)
    await eventually(
        lambda: recorded(
            deployed, "SELECT count(*) FROM receipts WHERE order_id = %s", paid.order_id
        ),
        lambda n: n == 1,
    )
    redis = Redis.from_url(deployed.redis_url)
    try:
        sp = ids.service_point_of(paid.order_id)
        order_key = keys.order(sp, paid.order_id)
        # Drained and final: the keys carry the retention. Let it pass at once.
        assert await eventually(lambda: redis.pttl(order_key), lambda ttl: ttl > 0)
        receipt = await deployed.receipts.GetReceipt(
            pb.GetReceiptRequest(order_id=paid.order_id), timeout=10
        )
        await redis.delete(order_key, keys.journal(sp, paid.order_id))
        await redis.delete(
            f"wp:{{receipts}}:r:{receipt.receipt_code}:{receipt.receipt_no}",
            f"wp:{{receipts}}:order:{paid.order_id}",
        )
    finally:
        await redis.aclose()
    again = await deployed.get(paid.order_id)
    assert again.state == pb.PAID and again.amount_fen == paid.amount_fen
    assert again.order_id == paid.order_id
    from_record = await deployed.receipts.GetReceipt(
        pb.GetReceiptRequest(order_id=paid.order_id), timeout=10
    )
    assert from_record.receipt_no == receipt.receipt_no
    assert from_record.check_code == receipt.check_code


async def test_the_drainer_actor_killed_with_sigkill_restarts_and_the_record_equals_redis(
    deployed: Deployed,
) -> None:
    drainer = deployed.actors.drainer
    pid = await runtime.actor_pid(drainer)
    assert pid is not None
    before = await recorded(deployed, "SELECT count(*) FROM orders")
    work = asyncio.gather(*(paid_in_cash(deployed) for _ in range(30)))
    await eventually(
        lambda: recorded(deployed, "SELECT count(*) FROM orders"), lambda n: n > before + 2
    )
    os.kill(pid, signal.SIGKILL)
    await work
    await eventually(lambda: runtime.actor_pid(drainer), lambda p: p not in (None, pid), within=60)
    redis = Redis.from_url(deployed.redis_url)
    points = [sp.id for sp in deployed.config.deployment.service_points]

    async def comparison() -> list[str]:
        async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
            return (await compare(redis, conn, points)).differences

    try:
        await eventually(comparison, lambda d: d == [], within=60, every=0.5)
    finally:
        await redis.aclose()
    journal = await recorded(deployed, "SELECT count(*) FROM journal")
    versions = await recorded(deployed, "SELECT sum(version) FROM orders")
    assert journal == versions  # no entry twice, none missing
