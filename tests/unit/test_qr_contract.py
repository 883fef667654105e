"""The QR additions to the contract: pay modes in and out of the front door, and the
moment a QR Pay may answer (the code made, not the payment final)."""

import hashlib

import orjson
import pytest

from orchestrator.domain.commands import Accepted, Pay, fingerprint
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, Channel, PayMode
from orchestrator.frontdoor.convert import order_message, pay_command, pay_mode_of
from orchestrator.frontdoor.snapshot import OrderView
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.support import LINES


def test_an_unspecified_mode_is_a_payment_code() -> None:
    assert pay_mode_of(pb.PAY_MODE_UNSPECIFIED) is PayMode.PAYER_PRESENTS_CODE
    assert pay_mode_of(pb.PAYER_PRESENTS_CODE) is PayMode.PAYER_PRESENTS_CODE
    assert pay_mode_of(pb.PAYER_SCANS_QR) is PayMode.PAYER_SCANS_QR
    with pytest.raises(InvalidArgument, match="pay mode"):
        pay_mode_of(7)


def test_an_old_clients_pay_request_keeps_its_fingerprint() -> None:
    old = pb.PayRequest(request_id="r", terminal_id="T01", order_id="SP01-M",
                        channel=pb.WECHAT, auth_code="134567890123450000")  # fmt: skip
    command = pay_command(old, "W01")
    assert command.mode is PayMode.PAYER_PRESENTS_CODE
    # What the fingerprint was before modes existed: a stored request id still matches.
    text = "Pay|T01|SP01-M|WECHAT|134567890123450000|0"
    assert fingerprint(command) == hashlib.sha256(text.encode()).hexdigest()[:32]
    qr = pay_command(pb.PayRequest(request_id="r", terminal_id="T01", order_id="SP01-M",
                                   channel=pb.WECHAT, mode=pb.PAYER_SCANS_QR), "W01")  # fmt: skip
    same_but_code = Pay("r", "T01", "W01", "SP01-M", Channel.WECHAT, "", 0)
    assert fingerprint(qr) != fingerprint(same_but_code)


def qr_order() -> Order:
    order, _ = Order.create(
        order_id="SP01-M", business_no="B", service_point_id="SP01", window_id="W01",
        payer_name="p", lines=LINES, catalog_version="v", now=1_000, expires_at=10**12,
    )  # fmt: skip
    order.start_attempt(
        attempt_id="A1", channel=Channel.ALIPAY, terminal_id="T01", request_id="r", now=2_000,
        mode=PayMode.PAYER_SCANS_QR,
    )  # fmt: skip
    return order


def test_a_qr_pay_may_answer_once_the_code_is_made() -> None:
    order = qr_order()
    accepted = Accepted(b"", "A1")
    assert not OrderView.decode(orjson.dumps(order.to_record())).work_done(accepted)
    order.record_attempt(
        "A1", AttemptEvent.QR_CODE_READY, 3_000, qr_code_url="http://h/q", qr_expires_at=122_000
    )
    assert OrderView.decode(orjson.dumps(order.to_record())).work_done(accepted)


def test_the_attempt_message_carries_the_code_and_its_mode() -> None:
    order = qr_order()
    order.record_attempt(
        "A1", AttemptEvent.QR_CODE_READY, 3_000, qr_code_url="http://h/q", qr_expires_at=122_000
    )
    [attempt] = order_message(orjson.dumps(order.to_record())).attempts
    assert attempt.mode == pb.PAYER_SCANS_QR
    assert attempt.qr_code_url == "http://h/q"
    assert attempt.qr_expires_at.ToMilliseconds() == 122_000
    assert attempt.state == pb.AWAITING_PAYER
