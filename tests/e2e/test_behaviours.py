"""Every sandbox behaviour (docs/DOMAIN.md §7) on every channel, over gRPC, through the
actors: the order ends where docs/DOMAIN.md says and the sandbox ledger agrees."""

import asyncio

import pytest

from orchestrator.domain.states import AttemptState, Channel, OrderState
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import EXPECTED, PROVIDER_CHANNELS

LEDGER = {
    AttemptState.SUCCEEDED: {"SUCCESS"},
    AttemptState.REVERSED: {"CLOSED", "REVOKED"},
    AttemptState.FAILED: {"PAYERROR"},
}


def ledger_states(channel: Channel, ending: str, attempt: AttemptState) -> set[str | None]:
    """What the sandbox may hold for an attempt that ended `attempt`. 6666: the pay never
    reached the provider; WeChat Pay's reverse of a trade it never made records nothing,
    the others close the trade number."""
    if ending == "6666" and channel is Channel.WECHAT:
        return {None}
    return set(LEDGER[attempt])


async def pay_and_check(deployed: Deployed, channel: Channel, ending: str) -> None:
    order = await deployed.create(deployed.window())
    answer = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel, ending), timeout=30
    )
    expected_order, expected_attempt = EXPECTED[ending][channel]
    assert pb.OrderState.Name(answer.state) == expected_order.value, (ending, answer)
    [attempt] = answer.attempts
    assert pb.AttemptState.Name(attempt.state) == expected_attempt.value, (ending, attempt)
    assert await deployed.get(order.order_id) == answer
    trade = deployed.trade(channel, attempt.attempt_id)
    allowed = ledger_states(channel, ending, expected_attempt)
    assert (trade.state.value if trade else None) in allowed, (ending, trade)
    if expected_attempt is AttemptState.SUCCEEDED:
        assert trade.amount_fen == order.amount_fen
        assert attempt.provider_trade_no == trade.trade_no
    if expected_order is OrderState.PAID:
        assert answer.paid_at.seconds > 0


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_every_behaviour_of_the_channel(deployed: Deployed, channel: Channel) -> None:
    await asyncio.gather(*(pay_and_check(deployed, channel, ending) for ending in sorted(EXPECTED)))


async def test_cash(deployed: Deployed) -> None:
    order = await deployed.create(deployed.window())
    request = deployed.pay_request(order, Channel.CASH)
    request.cash_received_fen = order.amount_fen + 500
    paid = await deployed.terminal_for(request.terminal_id).Pay(request, timeout=10)
    assert paid.state == pb.PAID
    assert paid.attempts[0].change_fen == 500
