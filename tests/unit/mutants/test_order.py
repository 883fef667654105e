"""The order aggregate's journal entries, records and refusals, value for value, written
for the mutants of domain/order.py that `make mutate` found alive."""

from __future__ import annotations

import pytest

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.errors import FailedPrecondition, InvalidArgument
from orchestrator.domain.ids import order_ids_of
from orchestrator.domain.order import (
    Change,
    Order,
    Refund,
    invariant_violations,
)
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    PayMode,
    RefundState,
)

NOW = 1_800_000_000_000
LINES = (
    PricedLine("PLT-AUTO", "机动车号牌", "副", FeeCategory.PRODUCTION, 1, 10000, 10000),
    PricedLine("EXAM-K1", "科目一", "次", FeeCategory.EXAM, 2, 1000, 2000),
)


def new_order(order_id: str = "SP01-0123456789ABCD") -> Order:
    order, change = Order.create(
        order_id=order_id, business_no="B1", service_point_id="SP01", window_id="W01",
        payer_name="张三", lines=LINES, catalog_version="2027-01", now=NOW,
        expires_at=NOW + 3_600_000,
    )  # fmt: skip
    assert change == Change(1, NOW, "created", OrderState.AWAITING_PAYMENT)
    return order


def paid(order: Order) -> str:
    attempt_id = order.next_attempt_id("ABC123")
    order.start_attempt(
        attempt_id=attempt_id, channel=Channel.WECHAT, terminal_id="T01", request_id="r1",
        now=NOW + 1, auth_code_masked="1345**********6789",
    )  # fmt: skip
    order.record_attempt(attempt_id, AttemptEvent.PAID, NOW + 2, trade_no="4200001")
    return attempt_id


def test_an_order_needs_a_line() -> None:
    with pytest.raises(InvalidArgument, match=r"^an order needs at least one priced line$"):
        Order.create(
            order_id="SP01-A", business_no="B1", service_point_id="SP01", window_id="W01",
            payer_name="张三", lines=(), catalog_version="2027-01", now=NOW, expires_at=NOW + 1,
        )  # fmt: skip


def test_cancel_and_expire_journal_what_happened() -> None:
    order = new_order()
    assert order.cancel("不办了", NOW + 5) == Change(
        2, NOW + 5, "cancelled", OrderState.CANCELLED, detail="不办了"
    )
    assert (order.state, order.cancel_reason, order.version) == (
        OrderState.CANCELLED, "不办了", 2,
    )  # fmt: skip
    other = new_order()
    assert other.expire(NOW + 6) == Change(2, NOW + 6, "expired", OrderState.EXPIRED)
    assert other.state is OrderState.EXPIRED


def test_an_attempt_id_is_the_compact_order_id_its_number_and_the_nonce() -> None:
    order = new_order()
    assert order.next_attempt_id("ABC123") == "SP010123456789ABCDP1ABC123"
    long = new_order("SERVICEPOINT42-0123456789ABCD")
    assert long.next_attempt_id("x1y2z3") == "OINT420123456789ABCDP1x1y2z3"
    for bad in ("ABC12", "ABC1234", "ABC-12", "ÄBC123"):
        with pytest.raises(ValueError, match=r"^nonce must be 6 letters or digits, got "):
            order.next_attempt_id(bad)


def test_a_paid_attempt_journals_and_records_every_field() -> None:
    order = new_order()
    attempt_id = order.next_attempt_id("ABC123")
    started = order.start_attempt(
        attempt_id=attempt_id, channel=Channel.WECHAT, terminal_id="T01", request_id="r1",
        now=NOW + 1, auth_code_masked="1345**********6789",
    )  # fmt: skip
    assert started == Change(
        2, NOW + 1, "attempt", OrderState.PAYING, attempt_id, AttemptState.SUBMITTED, "WECHAT"
    )
    confirming = order.record_attempt(attempt_id, AttemptEvent.PAYER_CONFIRMING, NOW + 2)
    assert confirming == Change(
        3, NOW + 2, "attempt", OrderState.PAYING, attempt_id, AttemptState.AWAITING_PAYER,
        "PAYER_CONFIRMING",
    )  # fmt: skip
    done = order.record_attempt(attempt_id, AttemptEvent.PAID, NOW + 3, trade_no="4200001")
    assert done == Change(
        4, NOW + 3, "attempt", OrderState.PAID, attempt_id, AttemptState.SUCCEEDED, "PAID"
    )
    assert (order.paid_at, order.paid_by) == (NOW + 3, attempt_id)
    assert order.to_record() == {
        "order_id": "SP01-0123456789ABCD", "business_no": "B1", "service_point_id": "SP01",
        "window_id": "W01", "payer_name": "张三", "created_by": "",
        "lines": [
            {"fee_code": "PLT-AUTO", "name": "机动车号牌", "unit": "副", "category": "production",
             "quantity": 1, "unit_price_fen": 10000, "amount_fen": 10000},
            {"fee_code": "EXAM-K1", "name": "科目一", "unit": "次", "category": "exam",
             "quantity": 2, "unit_price_fen": 1000, "amount_fen": 2000},
        ],
        "amount_fen": 12000, "catalog_version": "2027-01", "state": "PAID",
        "created_at": NOW, "expires_at": NOW + 3_600_000, "version": 4, "paid_at": NOW + 3,
        "paid_by": attempt_id, "cancel_reason": "", "refunded_fen": 0,
        "attempts": [
            {"attempt_id": attempt_id, "channel": "WECHAT", "state": "SUCCEEDED",
             "amount_fen": 12000, "terminal_id": "T01", "request_id": "r1",
             "created_at": NOW + 1, "finished_at": NOW + 3, "provider_trade_no": "4200001",
             "failure_reason": "", "auth_code_masked": "1345**********6789",
             "cash_received_fen": 0, "change_fen": 0, "follow_up": False,
             "mode": "PAYER_PRESENTS_CODE", "qr_code_url": "", "qr_expires_at": None},
        ],
        "refunds": [],
    }  # fmt: skip
    assert Order.from_record(order.to_record()) == order


def test_an_old_attempt_record_without_a_mode_reads_as_a_code_payment() -> None:
    order = new_order()
    paid(order)
    record = order.to_record()
    for attempt in record["attempts"]:
        del attempt["mode"], attempt["qr_code_url"], attempt["qr_expires_at"]
    [attempt] = Order.from_record(record).attempts
    assert (attempt.mode, attempt.qr_code_url, attempt.qr_expires_at) == (
        PayMode.PAYER_PRESENTS_CODE, "", None,
    )  # fmt: skip


def test_cash_gives_change_and_other_channels_record_no_cash() -> None:
    order = new_order()
    attempt_id = order.next_attempt_id("ABC123")
    order.start_attempt(
        attempt_id=attempt_id, channel=Channel.CASH, terminal_id="T01", request_id="r1",
        now=NOW + 1, cash_received_fen=15000,
    )  # fmt: skip
    attempt = order.attempt(attempt_id)
    assert (attempt.cash_received_fen, attempt.change_fen) == (15000, 3000)
    exact = new_order()
    exact.start_attempt(
        attempt_id="X1", channel=Channel.CASH, terminal_id="T01", request_id="r1",
        now=NOW + 1, cash_received_fen=12000,
    )  # fmt: skip
    assert exact.attempt("X1").change_fen == 0
    card = new_order()
    card.start_attempt(
        attempt_id="X1", channel=Channel.ALIPAY, terminal_id="T01", request_id="r1",
        now=NOW + 1, cash_received_fen=15000,
    )  # fmt: skip
    assert (card.attempt("X1").cash_received_fen, card.attempt("X1").change_fen) == (0, 0)


def test_start_attempt_refusals_say_why() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    order.state = OrderState.AWAITING_PAYMENT  # as if the state had not moved: the busy check
    with pytest.raises(FailedPrecondition) as busy:
        order.start_attempt(
            attempt_id="A2", channel=Channel.WECHAT, terminal_id="T01", request_id="r2",
            now=NOW,
        )  # fmt: skip
    assert busy.value.message == "order SP01-0123456789ABCD already has attempt A1 in flight"
    paid_order = new_order()
    paid(paid_order)
    with pytest.raises(FailedPrecondition) as closed:
        paid_order.start_attempt(
            attempt_id="A2", channel=Channel.WECHAT, terminal_id="T01", request_id="r2",
            now=NOW,
        )  # fmt: skip
    assert closed.value.message == "order SP01-0123456789ABCD is PAID, not payable"
    fresh = new_order()
    with pytest.raises(FailedPrecondition) as late:
        fresh.start_attempt(
            attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1",
            now=NOW + 3_600_000,
        )  # fmt: skip
    assert late.value.message == ("order SP01-0123456789ABCD expired and can no longer be paid")
    fresh.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1",
        now=NOW + 3_599_999,
    )  # fmt: skip
    with pytest.raises(InvalidArgument) as qr_cash:
        new_order().start_attempt(
            attempt_id="A1", channel=Channel.CASH, terminal_id="T01", request_id="r1",
            now=NOW, cash_received_fen=20000, mode=PayMode.PAYER_SCANS_QR,
        )  # fmt: skip
    assert qr_cash.value.message == "cash is paid at the counter, not by a QR code"
    with pytest.raises(InvalidArgument) as short:
        new_order().start_attempt(
            attempt_id="A1", channel=Channel.CASH, terminal_id="T01", request_id="r1",
            now=NOW, cash_received_fen=11999,
        )  # fmt: skip
    assert short.value.message == "cash received 11999 fen is less than the 12000 fen due"


def test_unknown_attempts_and_refunds_are_named() -> None:
    order = new_order()
    with pytest.raises(FailedPrecondition) as attempt:
        order.attempt("A9")
    assert attempt.value.message == "order SP01-0123456789ABCD has no attempt A9"
    with pytest.raises(FailedPrecondition) as refund:
        order.refund("R9")
    assert refund.value.message == "order SP01-0123456789ABCD has no refund R9"


def test_a_qr_code_needs_its_url_and_expiry() -> None:
    for url, expires in (("", NOW + 9), ("weixin://wxpay/1", None), ("weixin://wxpay/1", 0)):
        order = new_order()
        order.start_attempt(
            attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1",
            now=NOW, mode=PayMode.PAYER_SCANS_QR,
        )  # fmt: skip
        with pytest.raises(FailedPrecondition) as refused:
            order.record_attempt(
                "A1", AttemptEvent.QR_CODE_READY, NOW + 1, qr_code_url=url, qr_expires_at=expires
            )
        assert refused.value.message == "attempt A1: a QR code needs its URL and expiry"
    code_mode = new_order()
    code_mode.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    with pytest.raises(FailedPrecondition):
        code_mode.record_attempt(
            "A1", AttemptEvent.QR_CODE_READY, NOW + 1, qr_code_url="u", qr_expires_at=NOW + 9
        )
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW,
        mode=PayMode.PAYER_SCANS_QR,
    )  # fmt: skip
    order.record_attempt(
        "A1", AttemptEvent.QR_CODE_READY, NOW + 1, qr_code_url="weixin://wxpay/1",
        qr_expires_at=NOW + 120_000,
    )  # fmt: skip
    attempt = order.attempt("A1")
    assert (attempt.state, attempt.qr_code_url, attempt.qr_expires_at) == (
        AttemptState.AWAITING_PAYER, "weixin://wxpay/1", NOW + 120_000,
    )  # fmt: skip
    assert attempt.finished_at is None and not attempt.follow_up
    # closed unpaid: watched a while longer, since a scan may race the close
    order.record_attempt("A1", AttemptEvent.REVERSAL_STARTED, NOW + 2)
    order.record_attempt("A1", AttemptEvent.REVERSED, NOW + 3)
    assert (attempt.follow_up, attempt.finished_at, order.state) == (
        True, NOW + 3, OrderState.AWAITING_PAYMENT,
    )  # fmt: skip


def test_a_code_payment_reversed_is_not_followed_up_but_one_abandoned_is() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    order.record_attempt("A1", AttemptEvent.NO_ANSWER, NOW + 1, reason="timeout")
    assert order.attempt("A1").failure_reason == "timeout"
    order.record_attempt("A1", AttemptEvent.REVERSAL_STARTED, NOW + 2)
    change = order.record_attempt("A1", AttemptEvent.REVERSED, NOW + 3)
    assert change == Change(
        5, NOW + 3, "attempt", OrderState.AWAITING_PAYMENT, "A1", AttemptState.REVERSED,
        "REVERSED",
    )  # fmt: skip
    attempt = order.attempt("A1")
    assert (attempt.follow_up, attempt.failure_reason, attempt.finished_at) == (
        False, "timeout", NOW + 3,
    )  # fmt: skip
    order.record_attempt("A1", AttemptEvent.FOLLOW_UP_CLEARED, NOW + 9)
    assert attempt.finished_at == NOW + 3  # the first end stays
    abandoned = new_order()
    abandoned.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    abandoned.record_attempt("A1", AttemptEvent.REVERSAL_STARTED, NOW + 1)
    abandoned.record_attempt("A1", AttemptEvent.REVERSAL_ABANDONED, NOW + 2, reason="gave up")
    assert abandoned.attempt("A1").follow_up
    assert abandoned.attempt("A1").failure_reason == "gave up"


def test_an_unclear_attempt_found_paid_loses_its_failure_reason() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    order.record_attempt("A1", AttemptEvent.NO_ANSWER, NOW + 1, reason="timeout")
    change = order.record_attempt("A1", AttemptEvent.PAID, NOW + 2, reason="query")
    assert order.attempt("A1").failure_reason == ""
    assert change.detail == "query"


def test_a_refund_journals_its_approval_and_its_end() -> None:
    order = new_order()
    attempt_id = paid(order)
    change = order.request_refund(
        amount_fen=2000, reason="多收", supervisor_id="S1", terminal_id="T02",
        request_id="q1", now=NOW + 10, nonce="N0NCE1",
    )  # fmt: skip
    refund_id = f"{attempt_id}R1N0NCE1"
    assert change == Change(
        4, NOW + 10, "refund", OrderState.PAID, attempt_id, detail="多收", refund_id=refund_id,
        approval=("S1", "T02", 2000),
    )  # fmt: skip
    assert change.to_record() == {
        "v": 4, "at": NOW + 10, "what": "refund", "order_state": "PAID",
        "attempt_id": attempt_id, "detail": "多收", "refund_id": refund_id,
        "supervisor_id": "S1", "terminal_id": "T02", "amount_fen": 2000,
    }  # fmt: skip
    assert order.refund(refund_id).to_record() == {
        "refund_id": refund_id, "attempt_id": attempt_id, "amount_fen": 2000,
        "state": "PENDING", "reason": "多收", "supervisor_id": "S1", "terminal_id": "T02",
        "request_id": "q1", "automatic": False, "created_at": NOW + 10, "finished_at": None,
        "provider_refund_no": "", "failure_reason": "",
    }  # fmt: skip
    assert order.refundable_fen == 10000
    [ended] = order.record_refund(refund_id, succeeded=True, now=NOW + 11, refund_no="RF1")
    # journaled before the order's state moves on
    assert ended == Change(
        5, NOW + 11, "refund", OrderState.PAID, attempt_id, detail="SUCCEEDED",
        refund_id=refund_id,
    )  # fmt: skip
    assert order.state is OrderState.PARTIALLY_REFUNDED
    refund = order.refund(refund_id)
    assert (refund.state, refund.finished_at, refund.provider_refund_no) == (
        RefundState.SUCCEEDED, NOW + 11, "RF1",
    )  # fmt: skip
    with pytest.raises(FailedPrecondition) as twice:
        order.record_refund(refund_id, succeeded=False, now=NOW + 12)
    assert twice.value.message == f"refund {refund_id} is already SUCCEEDED"
    second = order.request_refund(
        amount_fen=10000, reason="", supervisor_id="S1", terminal_id="T02",
        request_id="q2", now=NOW + 13, nonce="N0NCE2",
    )  # fmt: skip
    assert second.refund_id == f"{attempt_id}R2N0NCE2"
    [refused] = order.record_refund(
        second.refund_id, succeeded=False, now=NOW + 14, reason="NOT_ENOUGH"
    )
    assert refused.detail == "NOT_ENOUGH"
    assert order.refund(second.refund_id).failure_reason == "NOT_ENOUGH"
    assert order.state is OrderState.PARTIALLY_REFUNDED and order.refundable_fen == 10000


def test_refund_refusals_say_how_much_is_left() -> None:
    order = new_order()
    with pytest.raises(FailedPrecondition) as unpaid:
        order.request_refund(
            amount_fen=1, reason="", supervisor_id="S1", terminal_id="T01", request_id="q",
            now=NOW, nonce="ABC123",
        )  # fmt: skip
    assert unpaid.value.message == (
        "order SP01-0123456789ABCD is AWAITING_PAYMENT; nothing to refund"
    )
    assert order.refundable_fen == 0
    paid(order)
    for amount in (0, 12001):
        with pytest.raises(FailedPrecondition) as refused:
            order.request_refund(
                amount_fen=amount, reason="", supervisor_id="S1", terminal_id="T01",
                request_id="q", now=NOW, nonce="ABC123",
            )  # fmt: skip
        assert refused.value.message == (
            f"refund of {amount} fen refused: 12000 fen of order SP01-0123456789ABCD can "
            "still be refunded"
        )
    order.request_refund(
        amount_fen=12000, reason="", supervisor_id="S1", terminal_id="T01", request_id="q",
        now=NOW, nonce="ABC123",
    )  # fmt: skip
    assert order.refundable_fen == 0


def late_success_order() -> tuple[Order, str]:
    """Attempt A1 reversed, then A2 paid the order."""
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    order.record_attempt("A1", AttemptEvent.REVERSAL_STARTED, NOW + 1)
    order.record_attempt("A1", AttemptEvent.REVERSED, NOW + 2)
    order.start_attempt(
        attempt_id="A2", channel=Channel.ALIPAY, terminal_id="T01", request_id="r2", now=NOW + 3
    )
    order.record_attempt("A2", AttemptEvent.PAID, NOW + 4)
    return order, "A1"


def test_a_late_success_journals_its_automatic_refund() -> None:
    order, late = late_success_order()
    change = order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5, trade_no="W9")
    assert change == Change(
        7, NOW + 5, "late_success", OrderState.PAID, late, AttemptState.REVERSED, "", "A1L1"
    )
    [refund] = order.refunds
    assert refund.to_record() == {
        "refund_id": "A1L1", "attempt_id": "A1", "amount_fen": 12000, "state": "PENDING",
        "reason": "late success", "supervisor_id": "", "terminal_id": "", "request_id": "",
        "automatic": True, "created_at": NOW + 5, "finished_at": None,
        "provider_refund_no": "", "failure_reason": "",
    }  # fmt: skip
    assert order.attempt(late).provider_trade_no == "W9"
    assert order.refundable_fen == 12000  # an automatic refund is not the payment's
    assert order.automatic_refunds("A1") == [refund] and order.automatic_refunds("A2") == []
    assert order.is_open
    with pytest.raises(FailedPrecondition) as twice:
        order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 6)
    assert twice.value.message == "attempt A1 is already being refunded"
    [refused] = order.record_refund("A1L1", succeeded=False, now=NOW + 7, reason="refused")
    assert (refused.what, refused.detail) == ("refund", "refused")
    # a refused automatic refund: the next try gets the next number and the reason given
    again = order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 8, reason="bill")
    assert (again.refund_id, again.detail, order.refunds[-1].reason) == ("A1L2", "bill", "bill")
    changes = order.record_refund("A1L2", succeeded=True, now=NOW + 9)
    assert [c.what for c in changes] == ["refund", "attempt"]
    assert changes[1].attempt_state is AttemptState.LATE_SUCCESS_REFUNDED
    assert order.refunded_fen == 0 and not order.is_open
    assert invariant_violations(order) == []


def test_a_late_success_refunded_needs_its_refund_done() -> None:
    order, late = late_success_order()
    order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5)
    with pytest.raises(FailedPrecondition) as early:
        order.record_attempt(late, AttemptEvent.LATE_SUCCESS_REFUNDED, NOW + 6)
    assert early.value.message == "attempt A1 has no completed late-success refund"


def test_a_marked_late_success_with_its_refund_only_pending_is_named() -> None:
    order, late = late_success_order()
    order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5)
    order.attempt(late).state = AttemptState.LATE_SUCCESS_REFUNDED
    assert invariant_violations(order) == ["attempt A1 marked refunded without a refund"]


def test_a_payment_refund_does_not_count_as_the_late_successs_refund() -> None:
    order, late = late_success_order()
    order.request_refund(
        amount_fen=100, reason="", supervisor_id="S1", terminal_id="T01", request_id="q",
        now=NOW + 5, nonce="ABC123",
    )  # fmt: skip
    order.record_refund(order.refunds[0].refund_id, succeeded=True, now=NOW + 6)
    order.attempt(late).state = AttemptState.LATE_SUCCESS_REFUNDED
    assert invariant_violations(order) == ["attempt A1 marked refunded without a refund"]


def test_is_open_until_the_last_refund_is_through() -> None:
    order = new_order()
    assert order.is_open
    paid(order)
    assert not order.is_open
    order.request_refund(
        amount_fen=100, reason="", supervisor_id="S1", terminal_id="T01", request_id="q",
        now=NOW + 5, nonce="ABC123",
    )  # fmt: skip
    assert order.is_open and order.pending_refunds() == order.refunds


def test_same_lines_ignore_order_but_not_quantity() -> None:
    order = new_order()
    assert order.same_lines(tuple(reversed(LINES)))
    fewer = (LINES[0], PricedLine("EXAM-K1", "科目一", "次", FeeCategory.EXAM, 1, 1000, 1000))
    assert not order.same_lines(fewer)
    assert not order.same_lines(LINES[:1])


def test_an_out_trade_no_leads_back_to_its_order() -> None:
    order = new_order()
    attempt_id = order.next_attempt_id("ABC123")
    assert order_ids_of(attempt_id, ["SP01", "SP02"]) == ["SP01-0123456789ABCD"]
    assert order_ids_of(attempt_id + "R1XYZ789", ["SP01"]) == ["SP01-0123456789ABCD"]
    assert order_ids_of(attempt_id, ["SP02"]) == []
    assert order_ids_of("SP010123456789ABCDQ1ABC123", ["SP01"]) == []  # no P after the id
    assert order_ids_of("SP010123456789", ["SP01"]) == []  # too short
    long = new_order("SERVICEPOINT42-0123456789ABCD")
    long_id = long.next_attempt_id("ABC123")
    assert order_ids_of(long_id, ["SERVICEPOINT42", "SP01"]) == ["SERVICEPOINT42-0123456789ABCD"]


def test_a_refund_record_round_trips() -> None:
    order, late = late_success_order()
    order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5)
    [refund] = order.refunds
    assert Refund.from_record(refund.to_record()) == refund
    assert Order.from_record(order.to_record()) == order


def test_a_refunds_number_and_failure_survive_its_record() -> None:
    order, late = late_success_order()
    order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5)
    [refund] = order.refunds
    refund.provider_refund_no, refund.failure_reason = "RF7", "退款被银行拒绝"
    again = Refund.from_record(refund.to_record())
    assert (again.provider_refund_no, again.failure_reason) == ("RF7", "退款被银行拒绝")


def test_a_refund_of_one_fen_is_taken() -> None:
    order = new_order()
    paid(order)
    change = order.request_refund(
        amount_fen=1, reason="", supervisor_id="S1", terminal_id="T01", request_id="q",
        now=NOW, nonce="ABC123",
    )  # fmt: skip
    assert change.approval == ("S1", "T01", 1) and order.refundable_fen == 11999


def test_a_refund_through_keeps_no_failure_and_no_number_unless_given() -> None:
    order = new_order()
    paid(order)
    refund_id = order.request_refund(
        amount_fen=100, reason="", supervisor_id="S1", terminal_id="T01", request_id="q",
        now=NOW, nonce="ABC123",
    ).refund_id  # fmt: skip
    order.record_refund(refund_id, succeeded=True, now=NOW + 1, reason="ok after all")
    refund = order.refund(refund_id)
    assert (refund.failure_reason, refund.provider_refund_no) == ("", "")


def test_a_late_success_given_back_is_journaled_at_its_time() -> None:
    order, late = late_success_order()
    order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5)
    changes = order.record_refund("A1L1", succeeded=True, now=NOW + 9, refund_no="RF7")
    assert changes == [
        Change(8, NOW + 9, "refund", OrderState.PAID, "A1", detail="SUCCEEDED", refund_id="A1L1"),
        Change(9, NOW + 9, "attempt", OrderState.PAID, "A1",
               AttemptState.LATE_SUCCESS_REFUNDED, "LATE_SUCCESS_REFUNDED"),
    ]  # fmt: skip
    assert order.refund("A1L1").provider_refund_no == "RF7"


def test_every_field_survives_the_record() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.CASH, terminal_id="T01", request_id="r1", now=NOW,
        cash_received_fen=15000,
    )  # fmt: skip
    order.attempt("A1").failure_reason = "drawer jammed"
    order.attempt("A1").follow_up = True
    order.cancel_reason = "不办了"
    again = Order.from_record(order.to_record())
    attempt = again.attempt("A1")
    assert (attempt.failure_reason, attempt.cash_received_fen, attempt.change_fen) == (
        "drawer jammed", 15000, 3000,
    )  # fmt: skip
    assert attempt.follow_up is True and again.cancel_reason == "不办了"


def test_a_change_with_an_attempt_state_records_it() -> None:
    change = Change(3, NOW, "attempt", OrderState.PAYING, "A1", AttemptState.UNKNOWN, "timeout")
    assert change.to_record() == {
        "v": 3, "at": NOW, "what": "attempt", "order_state": "PAYING", "attempt_id": "A1",
        "attempt_state": "UNKNOWN", "detail": "timeout",
    }  # fmt: skip


def test_a_late_success_ends_the_follow_up() -> None:
    order, late = late_success_order()
    order.attempt(late).follow_up = True
    order.record_attempt(late, AttemptEvent.LATE_SUCCESS, NOW + 5)
    assert order.attempt(late).follow_up is False


def test_an_attempt_started_without_its_extras_records_none() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW
    )
    attempt = order.attempt("A1")
    assert (attempt.auth_code_masked, attempt.cash_received_fen, attempt.change_fen) == ("", 0, 0)
    assert attempt.mode is PayMode.PAYER_PRESENTS_CODE


def test_cash_started_without_the_cash_received_is_refused_as_none_received() -> None:
    with pytest.raises(InvalidArgument) as short:
        new_order().start_attempt(
            attempt_id="A1", channel=Channel.CASH, terminal_id="T01", request_id="r1", now=NOW
        )
    assert short.value.message == "cash received 0 fen is less than the 12000 fen due"


def test_a_qr_code_ready_without_a_url_is_refused() -> None:
    order = new_order()
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T01", request_id="r1", now=NOW,
        mode=PayMode.PAYER_SCANS_QR,
    )  # fmt: skip
    with pytest.raises(FailedPrecondition) as refused:
        order.record_attempt("A1", AttemptEvent.QR_CODE_READY, NOW + 1, qr_expires_at=NOW + 9)
    assert refused.value.message == "attempt A1: a QR code needs its URL and expiry"
    assert order.attempt("A1").state is AttemptState.SUBMITTED
