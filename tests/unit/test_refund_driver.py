"""The refund driver against the in-process sandbox: an unclear refund is asked again
until the provider gives its final word, and never ends on a guess."""

import asyncio
from dataclasses import dataclass, field
from datetime import date

import pytest

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import load_config
from orchestrator.domain.states import Channel
from orchestrator.providers.engine import RefundDriver, RefundTicket, SystemClock
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    TradeAnswer,
    TradeRef,
)
from orchestrator.sandbox.bank import RefundState, SandboxBank, Timing
from tests.support import PROVIDER_CHANNELS, REFUND_EXPECTED, code, provider_id

SCALE = 0.01
CONFIG = load_config().with_settings(time_scale=SCALE)
TIMING = Timing(time_scale=SCALE)


@dataclass
class Outcome:
    calls: list[tuple[bool, str, str, float]] = field(default_factory=list)

    async def __call__(self, *, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
        self.calls.append((succeeded, refund_no, reason, asyncio.get_running_loop().time()))


async def paid_trade(bank: SandboxBank, channel: Channel, ending: str) -> TradeRef:
    out_trade_no = provider_id()
    reply = await bank.pay(out_trade_no, code(channel, ending), 8000, "SP01")
    assert reply.trade is not None and reply.trade.state.value == "SUCCESS"
    return TradeRef(out_trade_no, 8000, 0, reply.trade.trade_no)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
@pytest.mark.parametrize("ending", ["0000", "2323", "2424", "2525"])
async def test_a_refund_ends_only_on_the_providers_final_word(
    channel: Channel, ending: str
) -> None:
    bank = SandboxBank(channel.value, TIMING)
    trade = await paid_trade(bank, channel, ending)
    outcome = Outcome()
    clock = SystemClock()
    driver = RefundDriver(SandboxProvider(channel, bank), CONFIG.playbook(channel), clock, outcome)
    refund_no = provider_id("R")
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(
        driver.run(RefundTicket(refund_no, trade, 3000, clock.now_ms())), timeout=10
    )
    [(succeeded, _, reason, at)] = outcome.calls
    expected = REFUND_EXPECTED.get(ending, "SUCCEEDED")
    assert succeeded is (expected == "SUCCEEDED"), reason
    ledger = bank.trade(trade.out_trade_no)
    assert ledger is not None
    refunds = [r for r in ledger.refunds if r.out_refund_no == refund_no]
    if succeeded:
        [refund] = refunds  # refunded once, however often it was sent
        assert refund.state is RefundState.SUCCESS and refund.amount_fen == 3000
    else:
        assert refunds == []
    if ending == "2323":  # it waited for the processing to end, not a guess
        assert at - started >= TIMING.refund_processing_s * SCALE


class ForeverProcessing:
    """A provider whose refund never leaves PROCESSING, and whose query sometimes fails."""

    channel = Channel.WECHAT

    def __init__(self) -> None:
        self.queries = 0

    async def pay(self, call: PayCall) -> TradeAnswer:
        raise AssertionError("no pay here")

    async def query(self, trade: TradeRef) -> TradeAnswer:
        raise AssertionError("no query here")

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        raise AssertionError("no reversal here")

    async def refund(self, call: RefundCall) -> RefundAnswer:
        return RefundAnswer(RefundStatus.PENDING, reason="PROCESSING")

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        self.queries += 1
        if self.queries % 3 == 0:
            raise OutcomeUnknown("timeout")
        return RefundAnswer(RefundStatus.PENDING, reason="PROCESSING")

    async def bill(self, day: date) -> bytes:
        raise AssertionError("no bill here")


async def test_an_unclear_refund_stays_pending_and_is_reported_overdue() -> None:
    provider = ForeverProcessing()
    outcome = Outcome()
    flags: list[bool] = []
    clock = SystemClock()
    playbook = CONFIG.playbook(Channel.WECHAT)
    driver = RefundDriver(
        provider, playbook, clock, outcome, alert_after_s=0.2, overdue=flags.append
    )
    trade = TradeRef(provider_id(), 8000, 0, "T1")
    task = asyncio.create_task(
        driver.run(RefundTicket(provider_id("R"), trade, 100, clock.now_ms()))
    )
    # Far past the old give-up time (reverse_give_up_after_s), it is still asking.
    await asyncio.sleep(playbook.reverse_give_up_after_s + 0.5)
    assert not task.done() and outcome.calls == []
    assert flags == [True] and provider.queries > 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flags == [True, False]  # the gauge goes back down with the driver
