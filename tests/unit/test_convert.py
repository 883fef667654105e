import orjson
import pytest

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.commands import CreateOrder, Pay, fingerprint
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, Channel
from orchestrator.frontdoor.convert import create_command, order_message, pay_command
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb

LINES = (PricedLine("PLT-AUTO", "号牌", "副", FeeCategory.PRODUCTION, 1, 10000, 10000),)


def test_a_snapshot_becomes_an_order_message() -> None:
    order, _ = Order.create(
        order_id="SP01-M", business_no="B9", service_point_id="SP01", window_id="W01",
        payer_name="李四", lines=LINES, catalog_version="2024-01", now=1_800_000_000_123,
        expires_at=1_800_000_100_000,
    )  # fmt: skip
    order.start_attempt(
        attempt_id="SP01-M-1", channel=Channel.ALIPAY, terminal_id="T01", request_id="r",
        now=1_800_000_000_500, auth_code_masked="2812****0000",
    )  # fmt: skip
    order.record_attempt("SP01-M-1", AttemptEvent.PAID, 1_800_000_001_000, trade_no="T42")
    message = order_message(orjson.dumps(order.to_record()))
    assert message.state == pb.PAID
    assert message.amount_fen == 10000
    assert message.lines[0].unit_price_fen == 10000 and message.lines[0].name == "号牌"
    assert message.attempts[0].channel == pb.ALIPAY
    assert message.attempts[0].state == pb.SUCCEEDED
    assert message.attempts[0].provider_trade_no == "T42"
    assert message.created_at.seconds == 1_800_000_000 and message.created_at.nanos == 123_000_000
    assert message.paid_at.ToMilliseconds() == 1_800_000_001_000
    assert message.version == 3
    assert (message.office_id, message.site_id) == ("", "")  # the implicit office


def test_the_order_message_names_the_office_and_site() -> None:
    order, _ = Order.create(
        order_id="SP22-M", business_no="B9", service_point_id="SP22", window_id="W49",
        payer_name="李四", lines=LINES, catalog_version="2024-01", now=1_800_000_000_123,
        expires_at=1_800_000_100_000, office_id="QJ", site_id="QJ-QL",
    )  # fmt: skip
    message = order_message(orjson.dumps(order.to_record()))
    assert (message.office_id, message.site_id) == ("QJ", "QJ-QL")


def test_optional_client_prices_are_kept_only_when_sent() -> None:
    request = pb.CreateOrderRequest(
        request_id="r", business_no="B", window_id="W01", payer_name="p",
        lines=[
            pb.OrderLine(fee_code="A", quantity=1),
            pb.OrderLine(fee_code="B", quantity=2, amount_fen=0),
        ],
    )  # fmt: skip
    command = create_command(request)
    assert command.lines[0].amount_fen is None and command.lines[0].unit_price_fen is None
    assert command.lines[1].amount_fen == 0


def test_a_payment_needs_a_channel() -> None:
    with pytest.raises(InvalidArgument, match="channel is required"):
        pay_command(pb.PayRequest(request_id="r", order_id="SP01-X"), "W01")


def test_fingerprints_tell_requests_apart() -> None:
    a = Pay("r", "T01", "W01", "SP01-X", Channel.WECHAT, "134567890123450000", 0)
    b = Pay("r", "T01", "W01", "SP01-X", Channel.WECHAT, "134567890123450001", 0)
    same_but_key = Pay("other", "T01", "W01", "SP01-X", Channel.WECHAT, "134567890123450000", 0)
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(same_but_key)
    create = CreateOrder("r", "B", "W01", "p", ())
    assert fingerprint(create) != fingerprint(a)
