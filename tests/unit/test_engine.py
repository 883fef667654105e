"""The polling / reversal engine against the in-process sandbox, per channel playbook.

The recorder applies every event to a real Order, so an illegal sequence fails here.
"""

import asyncio
from dataclasses import replace
from datetime import date

import pytest

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import load_config
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel
from orchestrator.providers.engine import AttemptDriver, SystemClock, Ticket
from orchestrator.providers.port import (
    PayCall,
    ProviderUnavailable,
    RefundAnswer,
    RefundCall,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)
from orchestrator.sandbox.bank import SandboxBank, Timing
from tests.support import EXPECTED, PROVIDER_CHANNELS, REVERSED, Recorded, code

SCALE = 0.01
CONFIG = load_config().with_settings(time_scale=SCALE)
TIMING = Timing(time_scale=SCALE)


# The in-process provider speaks no protocol: its reverse closes a trade number the ledger
# never saw, for every channel, where WeChat's answers ORDER_NOT_EXIST (tests.support).
IN_PROCESS = {"6666": dict.fromkeys(Channel, REVERSED)}


def call_for(attempt_id: str, auth_code: str) -> PayCall:
    return PayCall(attempt_id, auth_code, 8000, "SP01", "T01", "科目一")


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
@pytest.mark.parametrize("ending", sorted(EXPECTED))
async def test_every_behaviour_ends_where_domain_md_says(channel: Channel, ending: str) -> None:
    clock = SystemClock()
    bank = SandboxBank(channel.value, TIMING)
    recorded = Recorded(clock)
    attempt_id = recorded.start(channel)
    driver = AttemptDriver(
        SandboxProvider(channel, bank), CONFIG.playbook(channel), clock, recorded
    )
    await asyncio.wait_for(
        driver.run(
            Ticket(
                attempt_id,
                AttemptState.SUBMITTED,
                clock.now_ms(),
                call_for(attempt_id, code(channel, ending)),
                8000,
            )
        ),
        timeout=10,
    )
    order_state, attempt_state = IN_PROCESS.get(ending, EXPECTED[ending])[channel]
    assert (recorded.order.state, recorded.order.attempts[-1].state) == (order_state, attempt_state)
    trade = bank.trade(attempt_id)
    if attempt_state is AttemptState.SUCCEEDED:
        assert trade is not None and trade.state.value == "SUCCESS"
    elif attempt_state is AttemptState.REVERSED:
        assert trade is not None and trade.state.value in ("CLOSED", "REVOKED")
    if ending == "8888":
        assert trade is not None and trade.reverse_calls == 2


async def test_resuming_an_attempt_whose_pay_never_left_closes_the_trade() -> None:
    clock = SystemClock()
    bank = SandboxBank("WECHAT", TIMING)
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.WECHAT)
    driver = AttemptDriver(
        SandboxProvider(Channel.WECHAT, bank), CONFIG.playbook(Channel.WECHAT), clock, recorded
    )
    await driver.run(Ticket(attempt_id, AttemptState.SUBMITTED, clock.now_ms(), None, 8000))
    assert recorded.events == [AttemptEvent.REVERSAL_STARTED, AttemptEvent.REVERSED]
    trade = bank.trade(attempt_id)
    assert trade is not None and trade.state.value == "CLOSED"


async def test_resuming_a_payer_still_confirming_queries_first_and_never_pays_again() -> None:
    clock = SystemClock()
    bank = SandboxBank("ALIPAY", TIMING)
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.ALIPAY)
    await bank.pay(attempt_id, code(Channel.ALIPAY, "1111"), 8000, "SP01")
    recorded.order.record_attempt(attempt_id, AttemptEvent.PAYER_CONFIRMING, clock.now_ms())
    driver = AttemptDriver(
        SandboxProvider(Channel.ALIPAY, bank), CONFIG.playbook(Channel.ALIPAY), clock, recorded
    )
    started = recorded.order.attempts[-1].created_at
    await driver.run(Ticket(attempt_id, AttemptState.AWAITING_PAYER, started, None, 8000))
    assert recorded.events[-1] is AttemptEvent.PAID
    assert len(bank.trades()) == 1


class Unreachable:
    """A provider that answers nothing but 5xx, whatever is asked."""

    channel = Channel.WECHAT

    async def pay(self, call: PayCall) -> TradeAnswer:
        raise ProviderUnavailable("503")

    async def query(self, trade: TradeRef) -> TradeAnswer:
        raise ProviderUnavailable("503")

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        raise ProviderUnavailable("503")

    async def refund(self, call: RefundCall) -> RefundAnswer:
        raise ProviderUnavailable("503")

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        raise ProviderUnavailable("503")

    async def bill(self, day: date) -> bytes:
        raise ProviderUnavailable("503")


async def test_an_unreachable_provider_still_ends_the_attempt_in_bounded_time() -> None:
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.WECHAT)
    playbook = replace(CONFIG.playbook(Channel.WECHAT), follow_up_window_s=8.0)
    driver = AttemptDriver(Unreachable(), playbook, clock, recorded)
    await asyncio.wait_for(
        driver.run(
            Ticket(
                attempt_id,
                AttemptState.SUBMITTED,
                clock.now_ms(),
                call_for(attempt_id, "x"),
                8000,
            )
        ),
        timeout=20,
    )
    assert recorded.events[-2:] == [
        AttemptEvent.REVERSAL_ABANDONED,
        AttemptEvent.FOLLOW_UP_CLEARED,
    ]
    attempt = recorded.order.attempts[-1]
    assert attempt.state is AttemptState.FAILED and not attempt.follow_up
    assert "reconciliation" in attempt.failure_reason


async def test_the_reversal_waits_for_reverse_not_before() -> None:
    clock = SystemClock()
    bank = SandboxBank("WECHAT", TIMING)
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.WECHAT)
    playbook = CONFIG.playbook(Channel.WECHAT)
    started = clock.now_ms()
    driver = AttemptDriver(SandboxProvider(Channel.WECHAT, bank), playbook, clock, recorded)
    await driver.run(
        Ticket(
            attempt_id,
            AttemptState.SUBMITTED,
            started,
            call_for(attempt_id, code(Channel.WECHAT, "2222")),
            8000,
        )
    )
    trade = bank.trade(attempt_id)
    assert trade is not None and trade.closed_at is not None
    assert trade.closed_at * 1000 - started >= playbook.reverse_not_before_s * 1000
    assert recorded.events[-1] is AttemptEvent.REVERSED
    assert TradeStatus.CLOSED  # the answer kind the adapter gives for a closed trade


class NeverReached:
    """Every pay is refused at the connection (it never arrived); queries find nothing."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.pays = 0
        self.reversals = 0

    async def pay(self, call: PayCall) -> TradeAnswer:
        self.pays += 1
        raise ProviderUnavailable("connection refused")

    async def query(self, trade: TradeRef) -> TradeAnswer:
        return TradeAnswer(TradeStatus.NOT_FOUND)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        self.reversals += 1
        return ReverseAnswer(ReverseStatus.DONE)

    async def refund(self, call: RefundCall) -> RefundAnswer:
        raise AssertionError("no refund here")

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        raise AssertionError("no refund here")

    async def bill(self, day: date) -> bytes:
        raise AssertionError("no bill here")


@pytest.mark.parametrize(
    ("channel", "ending"),
    [(Channel.WECHAT, AttemptState.FAILED), (Channel.UNIONPAY, AttemptState.REVERSED)],
)
async def test_a_pay_that_never_arrived(channel: Channel, ending: AttemptState) -> None:
    """Resent as the playbook allows; then WeChat (query, nothing there) ends it failed,
    while UnionPay reverses it anyway before the window's next sale."""
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(channel)
    provider = NeverReached(channel)
    playbook = CONFIG.playbook(channel)
    driver = AttemptDriver(provider, playbook, clock, recorded)
    ticket = Ticket(
        attempt_id, AttemptState.SUBMITTED, clock.now_ms(), call_for(attempt_id, "x"), 8000
    )
    await asyncio.wait_for(driver.run(ticket), timeout=10)
    assert recorded.order.attempts[-1].state is ending
    assert provider.pays == playbook.pay_retries + 1
    assert provider.reversals == (1 if channel is Channel.UNIONPAY else 0)
