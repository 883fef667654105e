"""The payer scans (issue 14): over gRPC, through the actors, against the sandboxes'
QR codes and their payer app, for every channel. Notifications do not exist yet here:
every outcome is found by the engine's polling. Ledgers agree with windowpay."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.payer import scan
from tests.e2e.conftest import CHANNELS, Deployed
from tests.e2e.test_reconcile import reconcile
from tests.e2e.test_service import windowpay
from tests.support import PROVIDER_CHANNELS, Asked, code, eventually

WITHIN = 90.0  # a code lives 6 s at the session's time scale; a loaded machine is slow


def qr_request(deployed: Deployed, order: pb.Order, channel: Channel) -> pb.PayRequest:
    return pb.PayRequest(
        request_id=uuid.uuid4().hex,
        terminal_id=deployed.terminal_of(order.window_id),
        order_id=order.order_id,
        channel=CHANNELS[channel],
        mode=pb.PAYER_SCANS_QR,
    )


async def shown(deployed: Deployed, channel: Channel) -> tuple[pb.Order, pb.PayRequest]:
    """An order whose QR code the terminal shows: Pay answered once the code was made."""
    order = await deployed.create(deployed.window())
    request = qr_request(deployed, order, channel)
    answer = await deployed.terminal_of_order(order).Pay(request, timeout=30)
    assert answer.state == pb.PAYING, answer
    [attempt] = answer.attempts
    assert attempt.state == pb.AWAITING_PAYER and attempt.mode == pb.PAYER_SCANS_QR
    assert attempt.qr_code_url.startswith("http://127.0.0.1:")
    assert attempt.qr_expires_at.seconds > attempt.created_at.seconds
    assert not attempt.auth_code_masked
    return answer, request


async def final(deployed: Deployed, order_id: str, *states: int) -> pb.Order:
    return await eventually(
        lambda: deployed.get(order_id),
        lambda o: o.attempts[-1].state in states,
        within=WITHIN,
        every=0.2,
    )


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_scanned_code_paid_is_found_by_polling(
    deployed: Deployed, channel: Channel
) -> None:
    order = await deployed.create(deployed.window())
    terminal = deployed.terminal_of_order(order)
    request = qr_request(deployed, order, channel)
    watch = terminal.WatchWindow(pb.WatchWindowRequest(terminal_id=request.terminal_id))
    shown: list[pb.Order] = []
    try:
        async with asyncio.timeout(WITHIN):
            async for seen in watch:
                if seen.order_id != order.order_id:
                    continue
                if seen.state == pb.AWAITING_PAYMENT and not shown:  # the stream is live
                    shown.append(await terminal.Pay(request, timeout=30))
                    again = await terminal.Pay(request, timeout=30)  # a retry: same code
                    first = shown[0].attempts[0]
                    assert [(a.attempt_id, a.qr_code_url) for a in again.attempts] == [
                        (first.attempt_id, first.qr_code_url)
                    ]
                    await scan(shown[0].attempts[0].qr_code_url, PayerBehaviour.PAY)
                if seen.state == pb.PAID:
                    break
    finally:
        watch.cancel()
    [attempt] = shown[0].attempts
    assert attempt.state == pb.AWAITING_PAYER and attempt.qr_code_url
    paid = await deployed.get(order.order_id)
    assert [a.attempt_id for a in paid.attempts] == [attempt.attempt_id]
    [attempt] = paid.attempts
    assert (paid.state, attempt.state) == (pb.PAID, pb.SUCCEEDED)
    trade = deployed.trade(channel, attempt.attempt_id)
    assert trade is not None and trade.state.value == "SUCCESS"
    assert trade.amount_fen == paid.amount_fen and attempt.provider_trade_no == trade.trade_no


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_declined_try_then_a_second_scan_pays_once(
    deployed: Deployed, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed try at a code the payer scans ends nothing (issue 20): the code stays
    payable at the provider, so the order is not offered to another way of paying while
    it is; the payer's second scan pays it, once."""
    order, _ = await shown(deployed, channel)
    url = order.attempts[0].qr_code_url
    await scan(url, PayerBehaviour.DECLINE)
    asked = Asked(deployed.sandboxes.bank(channel), order.attempts[0].attempt_id, monkeypatch)
    await eventually(asked.count, lambda n: n >= 3, within=30)  # the engine's queries go on
    waiting = await deployed.get(order.order_id)
    assert waiting.state == pb.PAYING
    assert [a.state for a in waiting.attempts] == [pb.AWAITING_PAYER]
    await scan(url, PayerBehaviour.PAY)
    paid = await final(deployed, order.order_id, pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
    assert paid.state == pb.PAID and [a.state for a in paid.attempts] == [pb.SUCCEEDED]
    assert not paid.refunds
    trade = deployed.trade(channel, paid.attempts[0].attempt_id)
    assert trade is not None and trade.state.value == "SUCCESS" and not trade.refunds
    assert trade.amount_fen == paid.amount_fen and trade.failed_tries == ("NOTENOUGH",)
    assert paid.attempts[0].provider_trade_no == trade.trade_no


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_an_expired_code_is_closed_and_the_order_paid_another_way(
    deployed: Deployed, channel: Channel
) -> None:
    order, _ = await shown(deployed, channel)
    await scan(order.attempts[0].qr_code_url, PayerBehaviour.NEVER)
    closed = await final(deployed, order.order_id, pb.REVERSED)
    assert closed.state == pb.AWAITING_PAYMENT
    trade = deployed.trade(channel, closed.attempts[0].attempt_id)
    assert trade is not None and trade.state.value == "CLOSED"
    paid = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel), timeout=30
    )
    assert paid.state == pb.PAID
    assert [a.state for a in paid.attempts] == [pb.REVERSED, pb.SUCCEEDED]
    assert paid.attempts[1].mode == pb.PAYER_PRESENTS_CODE


@pytest.mark.parametrize("channel", [Channel.WECHAT, Channel.ALIPAY])
async def test_a_payment_after_the_close_is_refunded_automatically(
    deployed: Deployed, channel: Channel
) -> None:
    order, _ = await shown(deployed, channel)
    await scan(order.attempts[0].qr_code_url, PayerBehaviour.AFTER_CLOSE)
    healed = await final(deployed, order.order_id, pb.LATE_SUCCESS_REFUNDED)
    assert healed.state == pb.AWAITING_PAYMENT  # the order itself was never paid
    [refund] = healed.refunds
    assert refund.automatic and refund.state == pb.REFUND_SUCCEEDED
    assert refund.amount_fen == healed.amount_fen
    trade = deployed.trade(channel, healed.attempts[0].attempt_id)
    assert trade is not None and trade.refunded_fen == trade.amount_fen == healed.amount_fen


async def test_a_unionpay_code_paid_as_it_ends_is_kept_or_refunded_never_twice(
    deployed: Deployed,
) -> None:
    """UnionPay cannot close a 申码 code: windowpay asks for it after its payTimeout. A
    payment made just as the code ends (the sandbox's after-close payer, which real
    UnionPay would refuse past payTimeout) either beats that question and stands, the
    order PAID, or comes after it and is a late success, refunded: one charge, net."""
    order, _ = await shown(deployed, Channel.UNIONPAY)
    await scan(order.attempts[0].qr_code_url, PayerBehaviour.AFTER_CLOSE)
    ended = await final(deployed, order.order_id, pb.SUCCEEDED, pb.LATE_SUCCESS_REFUNDED)
    trade = deployed.trade(Channel.UNIONPAY, ended.attempts[0].attempt_id)
    assert trade is not None
    if ended.attempts[0].state == pb.SUCCEEDED:
        assert ended.state == pb.PAID and not ended.refunds and trade.refunded_fen == 0
    else:
        [refund] = ended.refunds
        assert ended.state == pb.AWAITING_PAYMENT and refund.automatic
        assert trade.refunded_fen == trade.amount_fen == ended.amount_fen


async def test_qr_mode_refuses_what_does_not_belong_to_it(deployed: Deployed) -> None:
    order = await deployed.create(deployed.window())
    terminal = deployed.terminal_of_order(order)
    with_code = qr_request(deployed, order, Channel.WECHAT)
    with_code.auth_code = code(Channel.WECHAT)
    cash = qr_request(deployed, order, Channel.CASH)
    cash.cash_received_fen = order.amount_fen
    no_code = deployed.pay_request(order, Channel.ALIPAY)
    no_code.auth_code = ""
    for request in (with_code, cash, no_code):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await terminal.Pay(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    assert (await deployed.get(order.order_id)).attempts == []


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_an_old_client_without_a_mode_still_pays_by_code(
    deployed: Deployed, channel: Channel
) -> None:
    order = await deployed.create(deployed.window())
    request = deployed.pay_request(order, channel)
    assert request.mode == pb.PAY_MODE_UNSPECIFIED
    paid = await deployed.terminal_of_order(order).Pay(request, timeout=30)
    assert paid.state == pb.PAID
    [attempt] = paid.attempts
    assert attempt.mode == pb.PAYER_PRESENTS_CODE and not attempt.qr_code_url


async def test_a_day_with_qr_payments_reconciles_clean(deployed: Deployed, tmp_path: Path) -> None:
    async def one(channel: Channel, behaviour: PayerBehaviour, *states: int) -> str:
        order, _ = await shown(deployed, channel)
        await scan(order.attempts[0].qr_code_url, behaviour)
        return (await final(deployed, order.order_id, *states)).attempts[0].attempt_id

    mine = await asyncio.gather(
        *(one(c, PayerBehaviour.PAY, pb.SUCCEEDED) for c in PROVIDER_CHANNELS),
        # (UnionPay's code ends by its payTimeout: such a payment may also stand, PAID)
        *(
            one(c, PayerBehaviour.AFTER_CLOSE, pb.LATE_SUCCESS_REFUNDED, pb.SUCCEEDED)
            for c in PROVIDER_CHANNELS
        ),
        *(one(c, PayerBehaviour.NEVER, pb.REVERSED) for c in PROVIDER_CHANNELS),
    )
    returncode, report, out = await reconcile(deployed, tmp_path / "qr.json")
    assert not [d for d in report["differences"] if d["out_trade_no"] in mine], out
    assert (returncode, report["differences"]) == (0, []), out


async def test_the_pos_simulator_shows_the_code_and_the_payer_scans_it(
    deployed: Deployed,
) -> None:
    order = await deployed.create(deployed.window())
    terminal = deployed.terminal_of(order.window_id)
    pay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "pos", "--data-dir", str(deployed.data_dir),
        "pay", "--terminal", terminal, "--channel", "alipay", "--qr", "--order", order.order_id,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert pay.stdout is not None
    shown = ""
    async with asyncio.timeout(WITHIN):
        while "scan to pay" not in shown:
            line = (await pay.stdout.readline()).decode()
            assert line, (shown, (await pay.stderr.read()).decode() if pay.stderr else "")
            shown += line
    url = shown.split("scan to pay", 1)[1].split(": ", 1)[1].split()[0]
    assert "▀" in shown or "█" in shown  # the QR code itself, drawn in the terminal
    code, out, err = await windowpay("pos", "scan", url, "--behaviour", "pay")
    assert code == 0 and "pay" in out, err
    rest, err = await asyncio.wait_for(pay.communicate(), WITHIN)
    assert pay.returncode == 0, err.decode()
    assert "PAID" in rest.decode() and "ALIPAY SUCCEEDED" in rest.decode()
    code, _, err = await windowpay("pos", "scan", url, "--behaviour", "pay")
    assert code == 1 and "no longer be paid" in err  # a paid code cannot be paid twice
