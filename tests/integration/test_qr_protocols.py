"""The payer scans: each channel's QR protocol (WeChat Native, Alipay precreate, UnionPay
申码) against its sandbox gateway over real HTTP, driven by the shared engine, with the
sandbox's payer app playing every behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from orchestrator.channels.factory import Providers, build_providers
from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.config import Config
from orchestrator.domain.order import Attempt
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState, PayMode
from orchestrator.providers.engine import SystemClock, Ticket
from orchestrator.providers.port import (
    AnswerMismatch,
    QrCall,
    ReverseStatus,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.qr_driver import QrDriver
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.payer import ScanRefused, scan
from tests.support import PROVIDER_CHANNELS, Asked, Recorded, eventually, provider_id, small_config

AMOUNT = 8000


@dataclass
class World:
    config: Config
    sandboxes: Sandboxes
    providers: Providers


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    keys_dir = tmp_path_factory.mktemp("keys")
    ensure_dev_keys(keys_dir)
    # time scale 0.02: the code lives 2.4 s, a close is followed up for 6 s.
    config = small_config(time_scale=0.02)
    sandboxes = await start_sandboxes(config, keys_dir)
    config = config.with_base_urls(sandboxes.base_urls)
    providers = build_providers(config, keys_dir)
    yield World(config, sandboxes, providers)
    await providers.close()
    await sandboxes.stop()


def qr_call(out_trade_no: str, at_ms: int, expiry_s: float) -> QrCall:
    return QrCall(
        out_trade_no, AMOUNT, "SP01", "T01", "科目一", at_ms, at_ms + int(expiry_s * 1000)
    )


async def start_qr(world: World, channel: Channel) -> tuple[Recorded, asyncio.Task[None], Attempt]:
    """One QR attempt driven by the engine, once its code is shown."""
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(channel, PayMode.PAYER_SCANS_QR)
    playbook = world.config.playbook(channel)
    driver = QrDriver(world.providers[channel], playbook, clock, recorded)
    now = recorded.order.attempts[-1].created_at
    ticket = Ticket(
        attempt_id, AttemptState.SUBMITTED, now, None, AMOUNT,
        qr_call=qr_call(attempt_id, now, playbook.qr_expiry_s),
    )  # fmt: skip
    running = asyncio.create_task(driver.run(ticket))
    attempt = recorded.order.attempts[-1]
    await eventually(lambda: asyncio.sleep(0, attempt.qr_code_url), bool, within=10)
    assert attempt.state is AttemptState.AWAITING_PAYER
    assert recorded.order.state is OrderState.PAYING
    return recorded, running, attempt


async def run_qr(world: World, channel: Channel, behaviour: PayerBehaviour) -> Recorded:
    """One QR attempt from its code to the driver's end, the payer playing `behaviour`."""
    recorded, running, attempt = await start_qr(world, channel)
    await scan(attempt.qr_code_url, behaviour, delay_s=0.3)
    await asyncio.wait_for(running, timeout=30)
    return recorded


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_paid_when_the_payer_pays(world: World, channel: Channel) -> None:
    recorded = await run_qr(world, channel, PayerBehaviour.PAY)
    attempt = recorded.order.attempts[-1]
    assert attempt.state is AttemptState.SUCCEEDED, recorded.events
    assert recorded.order.state is OrderState.PAID
    trade = world.sandboxes.bank(channel).trade(attempt.attempt_id)
    assert trade is not None and trade.state.value == "SUCCESS"
    assert trade.amount_fen == AMOUNT and attempt.provider_trade_no == trade.trade_no


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_paid_after_a_delay(world: World, channel: Channel) -> None:
    recorded = await run_qr(world, channel, PayerBehaviour.DELAY)
    assert recorded.order.attempts[-1].state is AttemptState.SUCCEEDED, recorded.events


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_declined_try_leaves_the_code_payable_by_a_second_scan(
    world: World, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a code the payer scans a failed try ends nothing (issue 20): the gateway keeps
    the trade awaiting payment, the attempt keeps waiting, and the payer's second scan
    pays it, once."""
    recorded, running, attempt = await start_qr(world, channel)
    declined = await scan(attempt.qr_code_url, PayerBehaviour.DECLINE)
    assert declined["failed_tries"] == ["NOTENOUGH"]
    trade = TradeRef(attempt.attempt_id, AMOUNT, attempt.created_at)
    asked = await world.providers[channel].query(trade)
    assert asked.status is TradeStatus.CONFIRMING, asked  # the gateway's "not paid yet"
    asked = Asked(world.sandboxes.bank(channel), attempt.attempt_id, monkeypatch)
    await eventually(asked.count, lambda n: n >= 3, within=30)  # the engine asks meanwhile
    assert (attempt.state, recorded.order.state) == (AttemptState.AWAITING_PAYER, OrderState.PAYING)
    paid = await scan(attempt.qr_code_url, PayerBehaviour.PAY)
    await asyncio.wait_for(running, timeout=30)
    assert recorded.events == [AttemptEvent.QR_CODE_READY, AttemptEvent.PAID]
    assert (attempt.state, recorded.order.state) == (AttemptState.SUCCEEDED, OrderState.PAID)
    assert attempt.provider_trade_no == paid["trade_no"]
    ledger = world.sandboxes.bank(channel).trade(attempt.attempt_id)
    assert ledger is not None and ledger.state.value == "SUCCESS" and not ledger.refunds
    assert ledger.failed_tries == ("NOTENOUGH",)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_never_scanned_is_closed_at_expiry(world: World, channel: Channel) -> None:
    recorded = await run_qr(world, channel, PayerBehaviour.NEVER)
    attempt = recorded.order.attempts[-1]
    assert attempt.state is AttemptState.REVERSED and not attempt.follow_up, recorded.events
    assert recorded.events[-3:] == [
        AttemptEvent.REVERSAL_STARTED,
        AttemptEvent.REVERSED,
        AttemptEvent.FOLLOW_UP_CLEARED,
    ]
    assert recorded.order.state is OrderState.AWAITING_PAYMENT
    trade = world.sandboxes.bank(channel).trade(attempt.attempt_id)
    assert trade is not None and trade.state.value == "CLOSED"
    with pytest.raises(ScanRefused, match="no longer be paid"):
        await scan(attempt.qr_code_url, PayerBehaviour.PAY)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_payment_racing_the_close_is_a_late_success(world: World, channel: Channel) -> None:
    recorded = await run_qr(world, channel, PayerBehaviour.AFTER_CLOSE)
    attempt = recorded.order.attempts[-1]
    assert recorded.events[-1] is AttemptEvent.LATE_SUCCESS, recorded.events
    assert attempt.state is AttemptState.REVERSED
    assert recorded.order.state is OrderState.AWAITING_PAYMENT
    [refund] = recorded.order.automatic_refunds(attempt.attempt_id)
    assert refund.amount_fen == AMOUNT
    trade = world.sandboxes.bank(channel).trade(attempt.attempt_id)
    assert trade is not None and trade.state.value == "SUCCESS"


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_the_same_trade_number_gives_the_same_code(world: World, channel: Channel) -> None:
    provider = world.providers[channel]
    now = SystemClock().now_ms()
    call = qr_call(provider_id("Q"), now, 60)
    first = await provider.create_qr(call)
    assert (await provider.create_qr(call)).code_url == first.code_url


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_close_of_a_paid_trade_says_paid(world: World, channel: Channel) -> None:
    provider = world.providers[channel]
    call = qr_call(provider_id("Q"), SystemClock().now_ms(), 60)
    made = await provider.create_qr(call)
    await scan(made.code_url, PayerBehaviour.PAY)
    assert (await provider.close(call.trade)).status is ReverseStatus.PAID
    assert (await provider.query(call.trade)).status is TradeStatus.PAID


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_an_answer_for_another_amount_is_not_taken(world: World, channel: Channel) -> None:
    provider = world.providers[channel]
    call = qr_call(provider_id("Q"), SystemClock().now_ms(), 60)
    made = await provider.create_qr(call)
    await scan(made.code_url, PayerBehaviour.PAY)
    other = TradeRef(call.out_trade_no, AMOUNT + 1, call.at_ms)
    refusal = rf"^answer names \w+ '?{AMOUNT}'?, the request '?{AMOUNT + 1}'?$"
    with pytest.raises(AnswerMismatch, match=refusal):
        await provider.query(other)
