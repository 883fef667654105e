from collections.abc import Callable
from dataclasses import replace

import pytest

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.errors import FailedPrecondition, IllegalTransition, InvalidArgument
from orchestrator.domain.order import Order, Refund, invariant_violations
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    RefundState,
)
from tests.support import nonce

NOW = 1_800_000_000_000
LINES = (
    PricedLine("PLT-AUTO", "机动车号牌", "副", FeeCategory.PRODUCTION, 1, 10000, 10000),
    PricedLine("DOC-VLIC", "行驶证", "本", FeeCategory.PRODUCTION, 2, 1000, 2000),
)


def new_order() -> Order:
    order, change = Order.create(
        order_id="SP01-A",
        business_no="B1",
        service_point_id="SP01",
        window_id="W01",
        payer_name="张三",
        lines=LINES,
        catalog_version="2024-01",
        now=NOW,
        expires_at=NOW + 3_600_000,
    )
    assert change.version == 1 and change.what == "created"
    return order


def start(order: Order, channel: Channel = Channel.WECHAT, cash: int = 0) -> str:
    attempt_id = order.next_attempt_id(nonce())
    order.start_attempt(
        attempt_id=attempt_id,
        channel=channel,
        terminal_id="T01",
        request_id="r1",
        now=NOW + 1,
        cash_received_fen=cash,
    )
    return attempt_id


def test_a_new_order_is_priced_from_its_lines() -> None:
    order = new_order()
    assert order.amount_fen == 12000
    assert order.state is OrderState.AWAITING_PAYMENT
    assert invariant_violations(order) == []


def test_a_paid_attempt_pays_the_order() -> None:
    order = new_order()
    attempt_id = start(order)
    assert order.state is OrderState.PAYING
    change = order.record_attempt(attempt_id, AttemptEvent.PAID, NOW + 2, trade_no="42")
    assert order.state is OrderState.PAID
    assert order.paid_by == attempt_id and order.paid_at == NOW + 2
    assert order.attempt(attempt_id).provider_trade_no == "42"
    assert change.version == order.version == 3
    assert invariant_violations(order) == []


@pytest.mark.parametrize(
    "path",
    [
        [AttemptEvent.DECLINED],
        [AttemptEvent.PAYER_CONFIRMING, AttemptEvent.REVERSAL_STARTED, AttemptEvent.REVERSED],
        [AttemptEvent.NO_ANSWER, AttemptEvent.REVERSAL_STARTED, AttemptEvent.REVERSAL_ABANDONED],
        [AttemptEvent.NO_ANSWER, AttemptEvent.DECLINED],
    ],
)
def test_an_unpaid_attempt_returns_the_order_to_awaiting_payment(
    path: list[AttemptEvent],
) -> None:
    order = new_order()
    attempt_id = start(order)
    for event in path:
        order.record_attempt(attempt_id, event, NOW + 5, reason="why")
    assert order.attempt(attempt_id).final
    assert order.state is OrderState.AWAITING_PAYMENT
    assert invariant_violations(order) == []
    second = start(order, Channel.ALIPAY)  # the payer may try again, another channel
    assert second[:-6].endswith("P2") and second != attempt_id


def test_provider_ids_are_letters_and_digits_and_never_repeat() -> None:
    """out_trade_no / out_refund_no: what every channel accepts, and unique even if the
    store lost the attempt that used the same ordinal (the nonce differs)."""
    order = new_order()
    first, again = order.next_attempt_id("AAAAAA"), order.next_attempt_id("BBBBBB")
    # the order id's letters and digits, P and the attempt's ordinal, the nonce
    assert (first, again) == ("SP01AP1AAAAAA", "SP01AP1BBBBBB")
    paid = paid_order()
    refund_id = ask_refund(paid, 100)
    assert refund_id.isalnum() and len(refund_id) <= 39  # UnionPay: 40, with a void's V
    with pytest.raises(ValueError, match="nonce"):
        order.next_attempt_id("A-1")


def test_one_attempt_in_flight_at_a_time() -> None:
    order = new_order()
    start(order)
    with pytest.raises(FailedPrecondition, match="PAYING"):
        start(order)


def test_a_paid_order_takes_no_new_attempt_and_cannot_be_cancelled() -> None:
    order = new_order()
    order.record_attempt(start(order), AttemptEvent.PAID, NOW + 2)
    with pytest.raises(FailedPrecondition, match=r"^order SP01-A is PAID, not payable$"):
        start(order)
    with pytest.raises(IllegalTransition, match=r"^order in state PAID cannot take CANCEL$"):
        order.cancel("no", NOW + 3)


def test_cash_must_cover_the_amount() -> None:
    order = new_order()
    with pytest.raises(InvalidArgument, match="less than"):
        start(order, Channel.CASH, cash=11999)
    attempt_id = start(order, Channel.CASH, cash=15000)
    assert order.attempt(attempt_id).change_fen == 3000


def test_an_expired_order_cannot_be_paid() -> None:
    order = new_order()
    with pytest.raises(FailedPrecondition, match="expired"):
        order.start_attempt(
            attempt_id="x", channel=Channel.WECHAT, terminal_id="T", request_id="r",
            now=order.expires_at,
        )  # fmt: skip
    order.expire(order.expires_at)
    assert order.state is OrderState.EXPIRED
    assert not order.is_open


def test_an_illegal_event_changes_nothing() -> None:
    order = new_order()
    attempt_id = start(order)
    before = order.to_record()
    with pytest.raises(
        IllegalTransition, match=r"^attempt in state SUBMITTED cannot take REVERSED$"
    ):
        order.record_attempt(attempt_id, AttemptEvent.REVERSED, NOW + 3)
    assert order.to_record() == before


def test_records_round_trip() -> None:
    order = new_order()
    attempt_id = start(order)
    order.record_attempt(attempt_id, AttemptEvent.PAYER_CONFIRMING, NOW + 2)
    assert Order.from_record(order.to_record()) == order
    assert order.attempt(attempt_id).state is AttemptState.AWAITING_PAYER


def paid_order() -> Order:
    order = new_order()
    order.record_attempt(start(order), AttemptEvent.PAID, NOW + 2)
    return order


def ask_refund(order: Order, amount: int) -> str:
    order.request_refund(
        amount_fen=amount, reason="退费", supervisor_id="S1", terminal_id="T01",
        request_id="q", now=NOW + 10, nonce=nonce(),
    )  # fmt: skip
    return order.refunds[-1].refund_id


def test_refunds_move_the_order_to_partially_then_fully_refunded() -> None:
    order = paid_order()
    first = ask_refund(order, 2000)
    assert order.refundable_fen == 10000  # the pending refund is reserved
    order.record_refund(first, succeeded=True, now=NOW + 11, refund_no="RF1")
    assert (order.state, order.refunded_fen) == (OrderState.PARTIALLY_REFUNDED, 2000)
    second = ask_refund(order, 10000)
    order.record_refund(second, succeeded=True, now=NOW + 12)
    assert (order.state, order.refunded_fen) == (OrderState.REFUNDED, 12000)
    assert invariant_violations(order) == []


def test_a_failed_refund_gives_its_reservation_back() -> None:
    order = paid_order()
    refund_id = ask_refund(order, 12000)
    with pytest.raises(FailedPrecondition, match="can still be refunded"):
        ask_refund(order, 1)
    order.record_refund(refund_id, succeeded=False, now=NOW + 11, reason="refused")
    assert order.state is OrderState.PAID
    assert order.refundable_fen == 12000


def test_an_unpaid_order_has_nothing_to_refund() -> None:
    with pytest.raises(FailedPrecondition, match="nothing to refund"):
        ask_refund(new_order(), 100)


def test_a_late_success_is_refunded_and_marked() -> None:
    order = new_order()
    first = start(order)
    for event in (
        AttemptEvent.PAYER_CONFIRMING,
        AttemptEvent.REVERSAL_STARTED,
        AttemptEvent.REVERSAL_ABANDONED,
    ):
        order.record_attempt(first, event, NOW + 2)
    assert order.attempt(first).follow_up and order.is_open
    order.record_attempt(start(order, Channel.ALIPAY), AttemptEvent.PAID, NOW + 3)
    order.record_attempt(first, AttemptEvent.LATE_SUCCESS, NOW + 4, trade_no="W1")
    [auto] = order.refunds
    assert auto.automatic and auto.amount_fen == 12000 and not order.attempt(first).follow_up
    with pytest.raises(FailedPrecondition, match="already being refunded"):
        order.record_attempt(first, AttemptEvent.LATE_SUCCESS, NOW + 5)
    changes = order.record_refund(auto.refund_id, succeeded=True, now=NOW + 6)
    with pytest.raises(FailedPrecondition, match="cannot take LATE_SUCCESS"):
        order.record_attempt(first, AttemptEvent.LATE_SUCCESS, NOW + 7)  # given back once
    assert len(changes) == 2
    assert order.attempt(first).state is AttemptState.LATE_SUCCESS_REFUNDED
    assert order.state is OrderState.PAID and order.refunded_fen == 0
    assert invariant_violations(order) == []
    assert not order.is_open


# ---- invariant_violations: each kind of broken order, named ---------------------------
# Each case breaks one thing in a sound order (by hand: no domain method would) and lists
# exactly what invariant_violations must say about it.


def paying_order() -> tuple[Order, str]:
    order = new_order()
    return order, start(order)


def pending_refund(
    order: Order, amount: int, *, attempt_id: str = "", automatic: bool = False
) -> Refund:
    refund = Refund(
        refund_id=f"R{len(order.refunds) + 1}", attempt_id=attempt_id or order.paid_by,
        amount_fen=amount, state=RefundState.PENDING, reason="r", supervisor_id="S1",
        terminal_id="T01", request_id="q", automatic=automatic, created_at=NOW + 10,
    )  # fmt: skip
    order.refunds.append(refund)
    return refund


def amount_off_its_lines() -> tuple[Order, list[str]]:
    order = new_order()
    order.amount_fen = 12001
    return order, ["amount differs from the sum of its lines"]


def line_not_priced_by_quantity() -> tuple[Order, list[str]]:
    order = new_order()
    order.lines = (LINES[0], replace(LINES[1], amount_fen=2500))
    order.amount_fen = 12500
    return order, ["line DOC-VLIC amount is not unit price x quantity"]


def two_attempts_in_flight() -> tuple[Order, list[str]]:
    order, attempt_id = paying_order()
    order.attempts.append(replace(order.attempt(attempt_id), attempt_id="SECOND"))
    return order, ["more than one attempt in flight"]


def in_flight_while_awaiting_payment() -> tuple[Order, list[str]]:
    order, _ = paying_order()
    order.state = OrderState.AWAITING_PAYMENT
    return order, ["state AWAITING_PAYMENT with 1 attempts in flight"]


def paying_with_nothing_in_flight() -> tuple[Order, list[str]]:
    order, attempt_id = paying_order()
    order.attempt(attempt_id).state = AttemptState.FAILED
    return order, ["state PAYING with 0 attempts in flight"]


def paid_by_two_attempts() -> tuple[Order, list[str]]:
    order = paid_order()
    order.attempts.append(replace(order.attempts[0], attempt_id="SECOND"))
    return order, ["paid by more than one attempt"]


def paid_without_a_successful_attempt() -> tuple[Order, list[str]]:
    order = paid_order()
    order.attempts[0].state = AttemptState.FAILED
    return order, ["state PAID with 0 succeeded attempts"]


def succeeded_but_awaiting_payment() -> tuple[Order, list[str]]:
    order = paid_order()
    order.state = OrderState.AWAITING_PAYMENT
    return order, ["state AWAITING_PAYMENT with 1 succeeded attempts"]


def paid_by_names_another_attempt() -> tuple[Order, list[str]]:
    order = paid_order()
    order.paid_by = "ANOTHER"
    return order, ["paid_by does not name the succeeded attempt"]


def refund_above_what_was_paid() -> tuple[Order, list[str]]:
    order = paid_order()
    pending_refund(order, 13000).state = RefundState.SUCCEEDED
    order.refunded_fen, order.state = 13000, OrderState.REFUNDED
    return order, [
        "refunded more than was paid",
        "refunds under way or done exceed the payment",
        "state REFUNDED after 13000 fen refunded",
    ]


def refunds_under_way_above_the_payment() -> tuple[Order, list[str]]:
    order = paid_order()
    pending_refund(order, 8000)
    pending_refund(order, 8000)
    return order, ["refunds under way or done exceed the payment"]


def refunded_without_a_refund() -> tuple[Order, list[str]]:
    order = paid_order()
    order.refunded_fen, order.state = 2000, OrderState.PARTIALLY_REFUNDED
    return order, ["refunded amount differs from the refunds that went through"]


def refund_of_another_attempt() -> tuple[Order, list[str]]:
    order = paid_order()
    pending_refund(order, 100, attempt_id="ANOTHER")
    return order, ["a refund of the payment names another attempt"]


def state_behind_its_refunds() -> tuple[Order, list[str]]:
    order = paid_order()
    pending_refund(order, 2000).state = RefundState.SUCCEEDED
    order.refunded_fen = 2000
    return order, ["state PAID after 2000 fen refunded"]


def paying_attempt_refunded_as_a_late_success() -> tuple[Order, list[str]]:
    order = paid_order()
    pending_refund(order, 12000, automatic=True)
    return order, ["the paying attempt is refunded as a late success"]


def late_success_refunded_without_its_refund() -> tuple[Order, list[str]]:
    order, attempt_id = paying_order()
    order.record_attempt(attempt_id, AttemptEvent.DECLINED, NOW + 2)
    order.attempt(attempt_id).state = AttemptState.LATE_SUCCESS_REFUNDED
    return order, [f"attempt {attempt_id} marked refunded without a refund"]


BROKEN_ORDERS = [
    amount_off_its_lines,
    line_not_priced_by_quantity,
    two_attempts_in_flight,
    in_flight_while_awaiting_payment,
    paying_with_nothing_in_flight,
    paid_by_two_attempts,
    paid_without_a_successful_attempt,
    succeeded_but_awaiting_payment,
    paid_by_names_another_attempt,
    refund_above_what_was_paid,
    refunds_under_way_above_the_payment,
    refunded_without_a_refund,
    refund_of_another_attempt,
    state_behind_its_refunds,
    paying_attempt_refunded_as_a_late_success,
    late_success_refunded_without_its_refund,
]


@pytest.mark.parametrize("broken", BROKEN_ORDERS, ids=lambda case: case.__name__)
def test_invariant_violations_names_each_broken_order(
    broken: Callable[[], tuple[Order, list[str]]],
) -> None:
    order, expected = broken()
    assert invariant_violations(order) == expected


def test_the_sound_orders_the_cases_start_from_have_no_violation() -> None:
    order, attempt_id = paying_order()
    assert invariant_violations(order) == []
    order.record_attempt(attempt_id, AttemptEvent.DECLINED, NOW + 2)
    assert invariant_violations(order) == []
    paid = paid_order()
    assert invariant_violations(paid) == []
    ask_refund(paid, 8000)
    assert invariant_violations(paid) == []


@pytest.mark.parametrize(
    "closed",
    ["PAID", "PARTIALLY_REFUNDED", "REFUNDED", "CANCELLED", "EXPIRED"],
)
def test_a_closed_order_takes_no_payment(closed: str) -> None:
    order = paid_order()
    if closed in ("PARTIALLY_REFUNDED", "REFUNDED"):
        refund_id = ask_refund(order, 2000 if closed == "PARTIALLY_REFUNDED" else 12000)
        order.record_refund(refund_id, succeeded=True, now=NOW + 11)
    elif closed == "CANCELLED":
        order = new_order()
        order.cancel("withdrawn", NOW + 1)
    elif closed == "EXPIRED":
        order = new_order()
        order.expire(order.expires_at)
    assert order.state == closed and invariant_violations(order) == []
    before = order.to_record()
    with pytest.raises(FailedPrecondition, match=f"^order SP01-A is {closed}, not payable$"):
        start(order)
    assert order.to_record() == before
