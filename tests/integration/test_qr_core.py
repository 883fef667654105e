"""QR attempts through the service-point core on a real Redis: the code is recorded
before Pay answers, a retry answers the same code, and a new incarnation (after a
crash) goes on waiting for the payer, or closes the code at its expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from orchestrator.domain.commands import Accepted
from orchestrator.domain.states import AttemptState, Channel, OrderState, PayMode
from tests.core_harness import Harness, one, order_of, settled
from tests.support import eventually, small_config, unique_prefix


@pytest.fixture
async def harness(redis: Redis) -> AsyncIterator[Harness]:
    h = Harness.over_redis(redis, small_config(prefix=unique_prefix(), service_points=1, windows=4))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


async def test_a_code_survives_a_crash_and_is_paid_after_it(harness: Harness) -> None:
    first = await harness.core()
    order_id = order_of(await one(first, harness.create(1)))["order_id"]
    pay = replace(harness.pay(order_id, Channel.ALIPAY), auth_code="", mode=PayMode.PAYER_SCANS_QR)
    accepted = await one(first, pay)
    assert isinstance(accepted, Accepted)
    shown = await eventually(
        lambda: harness.stored(order_id), lambda o: bool(o.attempts[0].qr_code_url)
    )
    attempt = shown.attempts[0]
    assert attempt.state is AttemptState.AWAITING_PAYER and attempt.scans_qr
    assert not attempt.auth_code_masked
    replayed = await one(first, pay)
    assert isinstance(replayed, Accepted) and replayed.attempt_id == attempt.attempt_id
    await first.stop()  # its driver dies while the code is shown, as in a crash
    await harness.core()
    bank = harness.banks[Channel.ALIPAY]
    bank.scan(attempt.attempt_id)
    bank.pay_scanned(attempt.attempt_id)
    paid = await settled(harness, order_id)
    assert (paid.state, paid.attempts[0].state) == (OrderState.PAID, AttemptState.SUCCEEDED)
    assert paid.attempts[0].qr_code_url == attempt.qr_code_url


async def test_a_code_resumed_after_a_crash_is_closed_at_its_expiry(harness: Harness) -> None:
    first = await harness.core()
    order_id = order_of(await one(first, harness.create(2)))["order_id"]
    pay = replace(
        harness.pay(order_id, Channel.UNIONPAY, window=2),
        auth_code="",
        mode=PayMode.PAYER_SCANS_QR,
    )
    await one(first, pay)
    await eventually(lambda: harness.stored(order_id), lambda o: bool(o.attempts[0].qr_code_url))
    await first.stop()
    await harness.core()
    closed = await settled(harness, order_id)
    assert closed.attempts[0].state is AttemptState.REVERSED
    assert closed.state is OrderState.AWAITING_PAYMENT
    trade = harness.banks[Channel.UNIONPAY].trade(closed.attempts[0].attempt_id)
    assert trade is not None and trade.state.value == "CLOSED"
