"""The paid-in-full loop (实缴模式): every payment and refund reaches the business system
at least once, in order per case, with a stable id; a subscriber that was away gets
everything it had not acknowledged; receipts follow; the day's settlement adds up."""

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc
import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import eventually


class Subscriber:
    """A business system reading WatchPayments; remembers what it saw."""

    def __init__(self, deployed: Deployed, name: str) -> None:
        self.deployed = deployed
        self.name = name
        self.seen: list[pb.PaymentEvent] = []
        self._stream: grpc.aio.UnaryStreamCall | None = None
        self._task: asyncio.Task[None] | None = None

    def connect(self) -> None:
        self._stream = self.deployed.business.WatchPayments(
            pb.WatchPaymentsRequest(subscriber_id=self.name)
        )

        async def read() -> None:
            assert self._stream is not None
            async for event in self._stream:
                self.seen.append(event)

        self._task = asyncio.create_task(read())

    async def disconnect(self) -> None:
        assert self._stream is not None and self._task is not None
        self._stream.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def ack(self, events: list[pb.PaymentEvent]) -> int:
        answer = await self.deployed.business.AckPayments(
            pb.AckPaymentsRequest(subscriber_id=self.name, event_ids=[e.event_id for e in events]),
            timeout=10,
        )
        return answer.acknowledged

    def of(self, order_id: str) -> list[pb.PaymentEvent]:
        return [e for e in self.seen if e.order.order_id == order_id]

    async def until(self, order_id: str, count: int) -> list[pb.PaymentEvent]:
        async def probe() -> list[pb.PaymentEvent]:
            return self.of(order_id)

        return await eventually(probe, lambda events: len(events) >= count)


async def pay(deployed: Deployed, channel: Channel = Channel.WECHAT) -> pb.Order:
    order = await deployed.create(deployed.window())
    paid = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel), timeout=30
    )
    assert paid.state == pb.PAID
    return paid


async def refund(deployed: Deployed, order: pb.Order, amount: int) -> pb.Order:
    return await deployed.terminal_of_order(order).Refund(
        deployed.refund_request(order, amount), timeout=30
    )


async def test_a_business_system_away_for_a_while_misses_nothing(deployed: Deployed) -> None:
    subscriber = Subscriber(deployed, "biz-away")
    subscriber.connect()
    first = await pay(deployed)
    await refund(deployed, first, 1000)
    [paid, refunded] = await subscriber.until(first.order_id, 2)
    assert (paid.kind, refunded.kind) == (pb.ORDER_PAID, pb.ORDER_REFUNDED)  # case order kept
    assert paid.order.state == pb.PAID and refunded.refund.amount_fen == 1000
    assert await subscriber.ack([paid]) == 1  # the refund event is left unacknowledged
    await subscriber.disconnect()

    while_away = [await pay(deployed, channel) for channel in (Channel.ALIPAY, Channel.CASH)]
    subscriber.seen.clear()
    subscriber.connect()
    again = await subscriber.until(first.order_id, 1)
    assert [e.event_id for e in again] == [refunded.event_id]  # redelivered, same id
    for order in while_away:
        [event] = await subscriber.until(order.order_id, 1)
        assert event.kind == pb.ORDER_PAID and event.order.order_id == order.order_id
    assert paid.event_id not in {e.event_id for e in subscriber.seen}  # acked: not again
    assert await subscriber.ack(subscriber.seen) == len(subscriber.seen)
    await subscriber.disconnect()


async def test_one_stream_per_subscriber(deployed: Deployed) -> None:
    subscriber = Subscriber(deployed, "biz-single")
    subscriber.connect()
    await pay(deployed)
    await eventually(lambda: _noop(), lambda _: bool(subscriber.seen))
    second = deployed.business.WatchPayments(pb.WatchPaymentsRequest(subscriber_id=subscriber.name))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in second:
            pass
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await subscriber.disconnect()


async def _noop() -> None:
    return None


async def test_acks_need_valid_event_ids(deployed: Deployed) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await deployed.business.AckPayments(
            pb.AckPaymentsRequest(subscriber_id="business", event_ids=["nonsense"]), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_paid_order_gets_a_receipt_a_payer_can_fetch(deployed: Deployed) -> None:
    receipts = deployed.receipts
    order = await pay(deployed, Channel.ALIPAY)

    async def by_order() -> pb.Receipt | None:
        try:
            return await receipts.GetReceipt(pb.GetReceiptRequest(order_id=order.order_id))
        except grpc.aio.AioRpcError:
            return None

    receipt = await eventually(by_order, lambda r: r is not None)
    assert receipt is not None
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year % 100
    assert receipt.receipt_code == f"530101{year:02d}"
    assert len(receipt.receipt_no) == 10 and receipt.receipt_no.isdigit()
    assert len(receipt.check_code) == 6
    assert (
        receipt.total_fen == order.amount_fen == 11000 and receipt.total_in_words == "壹佰壹拾元整"
    )
    assert [i.fee_code for i in receipt.items] == ["PLT-AUTO", "DOC-VLIC"]
    assert receipt.payer_name == "王五" and receipt.status == pb.RECEIPT_ISSUED
    number = pb.ReceiptNumber(
        receipt_code=receipt.receipt_code, receipt_no=receipt.receipt_no,
        check_code=receipt.check_code,
    )  # fmt: skip
    printed = await receipts.GetReceipt(pb.GetReceiptRequest(number=number, render_html=True))
    html = printed.html.decode()
    assert "非税收入统一票据" in html and receipt.receipt_no in html and "壹佰壹拾元整" in html
    forged = pb.ReceiptNumber(
        receipt_code=receipt.receipt_code, receipt_no=receipt.receipt_no, check_code="AAAAAA"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await receipts.GetReceipt(pb.GetReceiptRequest(number=forged))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    await refund(deployed, order, order.amount_fen)
    refunded = await eventually(
        by_order, lambda r: r is not None and r.status == pb.RECEIPT_REFUNDED
    )
    assert refunded is not None and refunded.receipt_no == receipt.receipt_no
    assert refunded.refunded_fen == order.amount_fen


async def test_the_days_settlement_per_window_and_channel(deployed: Deployed) -> None:
    office = deployed.backoffice
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    window = deployed.window()
    sp = deployed.config.deployment.window_service_point[window]

    async def rows() -> dict[int, pb.SettlementRow]:
        answer = await office.GetSettlement(pb.SettlementRequest(date=today, service_point_id=sp))
        return {r.channel: r for r in answer.rows if r.window_id == window}

    before = await rows()
    orders = []
    for channel in (Channel.WECHAT, Channel.CASH, Channel.CASH):
        order = await deployed.create(window)
        orders.append(
            await deployed.terminal_of_order(order).Pay(
                deployed.pay_request(order, channel), timeout=30
            )
        )
    await refund(deployed, orders[1], 500)
    after = await rows()

    def delta(channel: int, field: str) -> int:
        old = getattr(before[channel], field) if channel in before else 0
        return int(getattr(after[channel], field)) - old

    assert (delta(pb.WECHAT, "payments"), delta(pb.WECHAT, "payments_fen")) == (1, 11000)
    assert (delta(pb.CASH, "payments"), delta(pb.CASH, "payments_fen")) == (2, 22000)
    assert (delta(pb.CASH, "refunds"), delta(pb.CASH, "refunds_fen")) == (1, 500)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await office.GetSettlement(pb.SettlementRequest(date="28/11/2026"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
