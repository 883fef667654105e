"""The front door's typed view of an order snapshot: what it decides on, decoded once."""

import orjson

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.commands import Accepted
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState
from orchestrator.frontdoor.convert import order_message
from orchestrator.frontdoor.snapshot import OrderView
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb

LINES = (PricedLine("PLT-AUTO", "号牌", "副", FeeCategory.PRODUCTION, 1, 10000, 10000),)


def paying_order() -> Order:
    order, _ = Order.create(
        order_id="SP01-M", business_no="B9", service_point_id="SP01", window_id="W01",
        payer_name="李四", lines=LINES, catalog_version="2024-01", now=1_800_000_000_000,
        expires_at=1_800_000_100_000,
    )  # fmt: skip
    order.start_attempt(
        attempt_id="SP01-M-1", channel=Channel.WECHAT, terminal_id="T01", request_id="r",
        now=1_800_000_000_500, auth_code_masked="1012****0000",
    )  # fmt: skip
    return order


def view_of(order: Order) -> OrderView:
    return OrderView.decode(orjson.dumps(order.to_record()))


def test_a_payment_under_way_is_watched_and_not_done() -> None:
    view = view_of(paying_order())
    assert view.order_id == "SP01-M" and view.version == 2
    assert view.state is OrderState.PAYING and view.watched
    assert view.attempt_states == {"SP01-M-1": AttemptState.SUBMITTED}
    assert not view.work_done(Accepted(b"", "SP01-M-1"))


def test_a_final_attempt_is_done_and_the_order_no_longer_watched() -> None:
    order = paying_order()
    order.record_attempt("SP01-M-1", AttemptEvent.PAID, 1_800_000_001_000, trade_no="T42")
    view = view_of(order)
    assert view.work_done(Accepted(b"", "SP01-M-1"))
    assert not view.work_done(Accepted(b"", "SP01-M-2"))  # another attempt: not this one
    assert not view.watched


def test_a_refund_is_done_once_no_longer_pending() -> None:
    order = paying_order()
    order.record_attempt("SP01-M-1", AttemptEvent.PAID, 1_800_000_001_000, trade_no="T42")
    order.request_refund(
        amount_fen=3000, reason="退费", supervisor_id="S1", terminal_id="T01",
        request_id="rf", now=1_800_000_002_000, nonce="ABCDEF",
    )  # fmt: skip
    refund_id = order.refunds[-1].refund_id
    assert not view_of(order).work_done(Accepted(b"", refund_id=refund_id))
    order.record_refund(refund_id, succeeded=True, now=1_800_000_003_000)
    done = view_of(order)
    assert done.work_done(Accepted(b"", refund_id=refund_id))
    assert order_message(done).refunds[0].state == pb.REFUND_SUCCEEDED
