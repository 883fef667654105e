"""Unclear refunds over gRPC, through the actors and the sandboxes' real HTTP: a refund
still processing stays REFUND_PENDING with its amount reserved until the provider's own
refund query says it went through, also across a killed actor; a lost answer is settled
by asking again; a final refusal releases the amount. The sandbox ledger agrees."""

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.sandbox.bank import SandboxBank
from tests.e2e.conftest import Deployed
from tests.support import PROVIDER_CHANNELS, eventually

PART = 1000


def terminal(deployed: Deployed, order: pb.Order) -> pb_grpc.TerminalStub:
    return deployed.terminal_for(deployed.terminal_of(order.window_id))


async def paid(deployed: Deployed, channel: Channel, ending: str, window: str = "") -> pb.Order:
    order = await deployed.create(window or deployed.window())
    answer = await terminal(deployed, order).Pay(
        deployed.pay_request(order, channel, ending), timeout=30
    )
    assert answer.state == pb.PAID, answer
    return answer


def refund(deployed: Deployed, order: pb.Order, amount: int) -> pb.RefundRequest:
    return deployed.refund_request(order, amount, "考试取消")


@contextmanager
def slow_refunds(bank: SandboxBank, processing_s: float) -> Iterator[None]:
    """2323 refunds stay processing this long (before time_scale) while inside."""
    before = bank.timing
    bank.timing = replace(before, refund_processing_s=processing_s)
    try:
        yield
    finally:
        bank.timing = before


def ledger_refunded(deployed: Deployed, channel: Channel, order: pb.Order) -> int:
    trade = deployed.trade(channel, order.attempts[0].attempt_id)
    assert trade is not None
    return sum(r.amount_fen for r in trade.refunds if r.state.value == "SUCCESS")


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_refund_still_processing_stays_pending_with_its_amount_reserved(
    deployed: Deployed, channel: Channel
) -> None:
    bank = deployed.sandboxes.bank(channel)
    order = await paid(deployed, channel, "2323")
    stub = terminal(deployed, order)
    with slow_refunds(bank, processing_s=200):  # 10 s at the e2e time scale
        held = await stub.Refund(refund(deployed, order, PART), timeout=4)
        [pending] = held.refunds
        assert pending.state == pb.REFUND_PENDING and held.refunded_fen == 0
        assert held.state == pb.PAID
        # Its amount is reserved: the rest may be refunded, not one fen more.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Refund(refund(deployed, order, order.amount_fen - PART + 1), timeout=4)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert ledger_refunded(deployed, channel, order) == 0  # still processing there
        final = await eventually(
            lambda: deployed.get(order.order_id),
            lambda o: o.refunds[0].state != pb.REFUND_PENDING,
            within=60,
            every=0.5,
        )
    assert final.refunds[0].state == pb.REFUND_SUCCEEDED, final
    assert final.state == pb.PARTIALLY_REFUNDED and final.refunded_fen == PART
    assert ledger_refunded(deployed, channel, order) == PART


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_refund_whose_answer_was_lost_is_refunded_once(
    deployed: Deployed, channel: Channel
) -> None:
    order = await paid(deployed, channel, "2424")
    answer = await terminal(deployed, order).Refund(refund(deployed, order, PART), timeout=30)
    final = await eventually(
        lambda: deployed.get(order.order_id),
        lambda o: o.refunds[0].state != pb.REFUND_PENDING,
        within=60,
        every=0.5,
    )
    assert answer.refunds[0].refund_id == final.refunds[0].refund_id
    assert final.refunds[0].state == pb.REFUND_SUCCEEDED, final
    assert final.refunded_fen == PART
    trade = deployed.trade(channel, order.attempts[0].attempt_id)
    assert trade is not None and len(trade.refunds) == 1 and trade.refunded_fen == PART


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_refused_refund_fails_and_releases_its_amount(
    deployed: Deployed, channel: Channel
) -> None:
    order = await paid(deployed, channel, "2525")
    stub = terminal(deployed, order)
    answer = await stub.Refund(refund(deployed, order, order.amount_fen), timeout=30)
    [refused] = answer.refunds
    assert refused.state == pb.REFUND_FAILED and refused.failure_reason, answer
    assert answer.state == pb.PAID and answer.refunded_fen == 0
    again = await stub.Refund(refund(deployed, order, order.amount_fen), timeout=30)
    assert len(again.refunds) == 2  # still refundable: the amount was released
    trade = deployed.trade(channel, order.attempts[0].attempt_id)
    assert trade is not None and trade.refunds == []


async def test_a_pending_refund_survives_a_killed_actor_and_still_resolves(
    deployed: Deployed,
) -> None:
    channel = Channel.ALIPAY
    bank = deployed.sandboxes.bank(channel)
    window = deployed.window()
    sp = deployed.config.deployment.window_service_point[window]
    order = await paid(deployed, channel, "2323", window)
    with slow_refunds(bank, processing_s=200):
        held = await terminal(deployed, order).Refund(refund(deployed, order, PART), timeout=4)
        assert held.refunds[0].state == pb.REFUND_PENDING
        submitter = deployed.actors.submitters[sp]
        pid = await submitter.pid()
        os.kill(pid, signal.SIGKILL)
        await eventually(submitter.pid, lambda new: new != pid, within=60, every=0.5)
        still = await deployed.get(order.order_id)
        assert still.refunds[0].state == pb.REFUND_PENDING and still.refunded_fen == 0
        final = await eventually(
            lambda: deployed.get(order.order_id),
            lambda o: o.refunds[0].state != pb.REFUND_PENDING,
            within=60,
            every=0.5,
        )
    assert final.refunds[0].state == pb.REFUND_SUCCEEDED, final
    assert final.refunded_fen == PART
    assert ledger_refunded(deployed, channel, order) == PART
