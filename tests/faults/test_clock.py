"""Fault 6: the clock. The business day ends while the service is down: the process is
killed just before the boundary and started again after it. Then an unpaid order of the
old day is expired (a terminal's Pay for it is refused cleanly, nothing charged), the
order paid before the boundary stays in its day's settlement once, a replayed Pay still
gets its first answer, and a new order belongs to the next business day.

The boundary is put a minute or two ahead by the deployment's own configuration
(`business_day_end`, minute precision, zone UTC), so the test waits for real time."""

from __future__ import annotations

import asyncio
import math
import time
import tomllib
import uuid
from datetime import UTC, datetime

import grpc
import pytest
import tomli_w

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.faults.conftest import Stack
from tests.faults.load import Clients, Payment, retrying
from tests.support import eventually

DAY_MS = 86_400_000


def next_boundary(at_least_s: float) -> datetime:
    """A whole minute at least `at_least_s` from now (UTC)."""
    return datetime.fromtimestamp(math.ceil((time.time() + at_least_s) / 60) * 60, tz=UTC)


async def create(clients: Clients, window: str) -> pb.Order:
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex,
        business_no=f"F-{uuid.uuid4().hex[:12]}",
        window_id=window,
        payer_name="周九",
        lines=[pb.OrderLine(fee_code="DOC-REG", quantity=1)],
    )
    return await retrying(lambda: clients.business.CreateOrder(request, timeout=15), within=60)


@pytest.mark.timeout(600)
async def test_restart_across_the_business_day_boundary(deployment: Stack) -> None:
    stack = deployment
    served = stack.served
    original = served.config.read_text()
    data = tomllib.loads(original)
    try:
        # Serving with the day ending at `boundary`, which is still far enough ahead.
        while True:
            boundary = next_boundary(at_least_s=90)
            data["service"].update(
                timezone="UTC",
                business_day_end=boundary.strftime("%H:%M"),
                expiry_sweep_interval_s=1,
            )
            served.config.write_text(tomli_w.dumps(data))
            await served.supervised_start()
            if boundary.timestamp() - time.time() > 25:
                break
        boundary_ms = int(boundary.timestamp() * 1000)
        windows = stack.windows[-3:]
        clients = Clients(stack.data_dir)
        try:
            paid, unpaid, late = [await create(clients, w) for w in windows]
            assert {o.expires_at.ToMilliseconds() for o in (paid, unpaid, late)} == {boundary_ms}
            cash = Payment(paid, stack.terminals[paid.window_id], Channel.CASH, "0000")
            first = await retrying(
                lambda: clients.terminal.Pay(cash.request(), timeout=15), within=60
            )
            assert first.state == pb.PAID
            day = datetime.fromtimestamp(first.paid_at.ToSeconds(), tz=UTC).date().isoformat()
            backoffice = clients.backoffice

            async def settled_fen() -> int:
                settlement = await retrying(
                    lambda: backoffice.GetSettlement(pb.SettlementRequest(date=day), timeout=15),
                    within=60,
                )
                return sum(r.payments_fen for r in settlement.rows if r.window_id == paid.window_id)

            before = await settled_fen()
            assert before >= paid.amount_fen

            # Down across the boundary: killed before it, started after it.
            served.kill()
            await asyncio.sleep(max(0.0, boundary.timestamp() - time.time()) + 1)
            await served.supervised_start()

            # Paying an order of the old day is refused cleanly, and charges nothing.
            wechat = Payment(late, stack.terminals[late.window_id], Channel.WECHAT, "0000")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await retrying(
                    lambda: clients.terminal.Pay(wechat.request(), timeout=15), within=60
                )
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "expired" in (refused.value.details() or "").lower()
            expired = await clients.terminal.GetOrder(
                pb.GetOrderRequest(order_id=late.order_id), timeout=15
            )
            assert expired.state == pb.EXPIRED and not expired.attempts
            assert not [
                t
                for t in stack.sandboxes.bank(Channel.WECHAT).trades()
                if t.out_trade_no.startswith(f"{late.order_id}-")
            ]
            # The other unpaid order is expired by the sweep after the restart.
            await eventually(
                lambda: clients.terminal.GetOrder(
                    pb.GetOrderRequest(order_id=unpaid.order_id), timeout=15
                ),
                lambda o: o.state == pb.EXPIRED,
                within=60,
            )
            # The payment of the old day: the same answer again, counted once, in its day.
            replay = await retrying(
                lambda: clients.terminal.Pay(cash.request(), timeout=15), within=60
            )
            assert replay.attempts[0].attempt_id == first.attempts[0].attempt_id
            assert replay.state == pb.PAID
            assert await settled_fen() == before
            # A new order belongs to the next business day.
            new = await create(clients, windows[1])
            assert new.expires_at.ToMilliseconds() == boundary_ms + DAY_MS
        finally:
            await clients.close()
        stack.record(
            "6-clock",
            boundary_utc=boundary.strftime("%H:%M"),
            restarted_after_boundary=True,
            expired_pay_refused="FAILED_PRECONDITION",
        )
    finally:
        served.config.write_text(original)
