"""Fault 6: the clock. The business day and the calendar date end while the service is
down: the process is killed just before local midnight and started again after it. Then
an unpaid order of the old day is expired (a terminal's Pay for it is refused cleanly,
nothing charged), the payment made before midnight is in the old date's settlement
exactly once and not in the new date's, a replayed Pay still gets its first answer, and
an order paid after the restart belongs to the new date and the next business day.

Midnight is brought a minute or two ahead by the deployment's own configuration, with
every clock at the real time: its zone is a fixed offset, to the minute, written by the
test (tests/faults/zones.py), and its business day ends at midnight. So the test waits
for real time, and settlement, expiry and the record all take their dates from the
zone as they would in production."""

from __future__ import annotations

import asyncio
import math
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timezone

import grpc
import pytest
import tomli_w
from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.faults.conftest import Stack
from tests.faults.load import (
    Clients,
    Payment,
    double_charges,
    kept_at_provider,
    problems,
    retrying,
)
from tests.faults.zones import fixed, offset_for_midnight_at, tz_path_with, write_zone
from tests.support import eventually

DAY_MS = 86_400_000
ZONE = "FaultDrill/Midnight"


def next_minute(at_least_s: float) -> int:
    """A whole minute (seconds since the epoch) at least `at_least_s` from now."""
    return math.ceil((time.time() + at_least_s) / 60) * 60


def local_date(stamp: Timestamp, zone: timezone) -> date:
    return datetime.fromtimestamp(stamp.ToMilliseconds() / 1000, tz=zone).date()


async def create(clients: Clients, window: str) -> pb.Order:
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex,
        business_no=f"F-{uuid.uuid4().hex[:12]}",
        window_id=window,
        payer_name="周九",
        lines=[pb.OrderLine(fee_code="DOC-REG", quantity=1)],
    )
    return await retrying(lambda: clients.business.CreateOrder(request, timeout=15), within=60)


async def find(clients: Clients, order_id: str) -> pb.Order | None:
    try:
        return await retrying(
            lambda: clients.terminal.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=15),
            within=60,
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def takings_reader(clients: Clients) -> Callable[[date, str], Awaitable[tuple[int, int]]]:
    async def takings(day: date, window: str) -> tuple[int, int]:
        """(payments, fen) of `window` in the settlement of `day`, every channel."""
        settlement = await retrying(
            lambda: clients.backoffice.GetSettlement(
                pb.SettlementRequest(date=day.isoformat()), timeout=15
            ),
            within=60,
        )
        rows = [r for r in settlement.rows if r.window_id == window]
        return sum(r.payments for r in rows), sum(r.payments_fen for r in rows)

    return takings


@pytest.mark.timeout(600)
async def test_restart_across_midnight(deployment: Stack) -> None:
    stack = deployment
    served = stack.served
    original = served.config.read_text()
    data = tomllib.loads(original)
    zones = stack.data_dir / "zones"
    try:
        # Serving with local midnight at `midnight`, which is still far enough ahead.
        while True:
            midnight = next_minute(at_least_s=90)
            offset_s = offset_for_midnight_at(midnight)
            write_zone(zones, ZONE, offset_s)
            served.env["PYTHONTZPATH"] = tz_path_with(zones)
            data["service"].update(
                timezone=ZONE, business_day_end="00:00", expiry_sweep_interval_s=1
            )
            served.config.write_text(tomli_w.dumps(data))
            await served.supervised_start()
            if midnight - time.time() > 25:
                break
        zone = fixed(offset_s)
        midnight_ms = midnight * 1000
        new_day = datetime.fromtimestamp(midnight, tz=zone).date()
        old_day = datetime.fromtimestamp(midnight - 1, tz=zone).date()
        assert datetime.fromtimestamp(midnight, tz=zone).time().isoformat() == "00:00:00"

        windows = stack.windows[-3:]
        clients = Clients(stack.data_dir)
        takings = takings_reader(clients)
        try:
            paid, unpaid, late = [await create(clients, w) for w in windows]
            assert {o.expires_at.ToMilliseconds() for o in (paid, unpaid, late)} == {midnight_ms}
            before = {w: await takings(old_day, w) for w in windows}
            assert [await takings(new_day, w) for w in windows] == [(0, 0)] * 3

            cash = Payment(paid, stack.terminals[paid.window_id], Channel.CASH, "0000")
            first = await retrying(
                lambda: clients.terminal.Pay(cash.request(), timeout=15), within=60
            )
            assert first.state == pb.PAID
            assert local_date(first.paid_at, zone) == old_day
            count, fen = before[paid.window_id]
            once_in_old_day = (count + 1, fen + paid.amount_fen)
            assert await takings(old_day, paid.window_id) == once_in_old_day

            # Down across midnight: killed before it, started after it.
            served.kill()
            killed = time.monotonic()
            await asyncio.sleep(max(0.0, midnight - time.time()) + 1)
            restart_to_serving_s = await served.supervised_start()
            serving = time.monotonic()
            down_for_s = serving - killed
            assert time.time() > midnight

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
            expired_seen_after_s = time.monotonic() - serving
            # The payment of the old day: the same answer again, in its date's settlement
            # exactly once, and not in the new date's.
            replay = await retrying(
                lambda: clients.terminal.Pay(cash.request(), timeout=15), within=60
            )
            assert replay.state == pb.PAID
            assert [a.attempt_id for a in replay.attempts] == [a.attempt_id for a in first.attempts]
            assert replay.paid_at == first.paid_at
            assert await takings(old_day, paid.window_id) == once_in_old_day
            assert await takings(new_day, paid.window_id) == (0, 0)

            # A new order belongs to the next business day; paid, it is the new date's.
            new = await create(clients, unpaid.window_id)
            assert new.expires_at.ToMilliseconds() == midnight_ms + DAY_MS
            alipay = Payment(new, stack.terminals[new.window_id], Channel.ALIPAY, "0000")
            settled = await retrying(
                lambda: clients.terminal.Pay(alipay.request(), timeout=15), within=60
            )
            assert settled.state == pb.PAID
            assert local_date(settled.paid_at, zone) == new_day
            (attempt,) = settled.attempts
            assert kept_at_provider(stack.sandboxes, Channel.ALIPAY, attempt.attempt_id) == (
                new.amount_fen
            )
            assert await takings(new_day, new.window_id) == (1, new.amount_fen)
            assert await takings(old_day, new.window_id) == before[new.window_id]

            # Nothing acknowledged is lost, nobody was charged twice, the ledgers agree.
            cash.answer, alipay.answer = replay, settled
            found = {o.order_id: await find(clients, o.order_id) for o in (paid, unpaid, late, new)}
            final = {k: o for k, o in found.items() if o is not None}
            lost = len(found) - len(final)
            doubles = double_charges(final, stack.sandboxes)
            disagreements = problems([cash, alipay], final, stack.sandboxes)
            assert (lost, doubles, disagreements) == (0, 0, [])
        finally:
            await clients.close()
        stack.record(
            "6-clock",
            midnight_utc=datetime.fromtimestamp(midnight, tz=fixed(0)).strftime("%H:%M"),
            zone_offset=zone.tzname(None),
            old_date=old_day.isoformat(),
            new_date=new_day.isoformat(),
            down_for_s=round(down_for_s, 1),
            restart_to_serving_s=round(restart_to_serving_s, 1),
            expired_seen_after_s=round(expired_seen_after_s, 1),
            expired_pay_refused="FAILED_PRECONDITION",
            lost=lost,
            double_charges=doubles,
        )
    finally:
        served.config.write_text(original)
        served.env.pop("PYTHONTZPATH", None)
