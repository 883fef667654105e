"""Classifying the differences between one bill and windowpay's records."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, Channel
from orchestrator.providers.bills import BillRow
from orchestrator.reconcile.matcher import Kind, match

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 28)
NOON = int(datetime(2026, 11, 28, 4, 0, tzinfo=UTC).timestamp() * 1000)  # 12:00 local
LINES = (PricedLine("EXM-K1", "科目一", "次", FeeCategory.EXAM, 1, 8000, 8000),)


def order(order_id: str, *outcomes: AttemptEvent) -> Order:
    """An order whose attempts (WeChat) end with the given provider outcomes, in turn."""
    created, _ = Order.create(
        order_id=order_id, business_no="B", service_point_id="SP01", window_id="W01",
        payer_name="p", lines=LINES, catalog_version="v", now=NOON, expires_at=NOON + 10**8,
    )  # fmt: skip
    for outcome in outcomes:
        attempt_id = created.next_attempt_id("AAAAAA")
        created.start_attempt(
            attempt_id=attempt_id, channel=Channel.WECHAT, terminal_id="T", request_id="r",
            now=NOON,
        )  # fmt: skip
        created.record_attempt(attempt_id, outcome, NOON)
    return created


def row(out_trade_no: str, amount: int = 8000, *, refund: str = "", kept: bool = True) -> BillRow:
    return BillRow(
        Channel.WECHAT, bool(refund), out_trade_no, refund, "T", amount, kept,
        datetime(2026, 11, 28, 12, 0),
    )  # fmt: skip


def kinds(rows: list[BillRow], orders: list[Order]) -> list[tuple[Kind, str]]:
    result = match(Channel.WECHAT, DAY, rows, orders, ZONE)
    return [(d.kind, d.out_trade_no) for d in result.differences]


def test_a_clean_day_matches_everything() -> None:
    paid = order("O1", AttemptEvent.PAID)
    paid.request_refund(
        amount_fen=3000,
        reason="r",
        supervisor_id="S",
        terminal_id="T",
        request_id="q",
        now=NOON,
        nonce="AAAAAA",
    )
    paid.record_refund(paid.refunds[0].refund_id, succeeded=True, now=NOON)
    declined = order("O2", AttemptEvent.DECLINED)
    rows = [row("O1P1AAAAAA"), row("O1P1AAAAAA", 3000, refund="O1P1AAAAAAR1AAAAAA")]
    result = match(Channel.WECHAT, DAY, rows, [paid, declined], ZONE)
    assert result.differences == []
    assert (result.matched_count, result.matched_amount_fen) == (1, 8000)
    assert (result.refunds_matched_count, result.refunds_matched_amount_fen) == (1, 3000)


def test_each_kind_of_difference() -> None:
    paid = order("O1", AttemptEvent.PAID)
    missing = order("O2", AttemptEvent.PAID)
    declined = order("O3", AttemptEvent.DECLINED)
    twice = order("O4", AttemptEvent.DECLINED, AttemptEvent.PAID)
    rows = [
        row("O1P1AAAAAA", 8001),  # amount
        row("GHOST", 5000),  # windowpay never saw it
        row("O3P1AAAAAA"),  # declined at windowpay, paid at the provider
        row("O4P1AAAAAA"), row("O4P2AAAAAA"),  # the order is paid twice at the provider
    ]  # fmt: skip
    result = match(Channel.WECHAT, DAY, rows, [paid, missing, declined, twice], ZONE)
    found = {(d.kind, d.out_trade_no): d for d in result.differences}
    assert set(found) == {
        (Kind.AMOUNT_MISMATCH, "O1P1AAAAAA"),
        (Kind.MISSING_AT_WINDOWPAY, "GHOST"),
        (Kind.STATE_MISMATCH, "O3P1AAAAAA"),
        (Kind.DUPLICATE_SUCCESS, "O4P1AAAAAA"),
        (Kind.MISSING_AT_PROVIDER, "O2P1AAAAAA"),
    }
    assert [d.out_trade_no for d in result.differences if d.heal] == ["O3P1AAAAAA", "O4P1AAAAAA"]
    assert found[(Kind.DUPLICATE_SUCCESS, "O4P1AAAAAA")].order_id == "O4"
    assert result.matched_count == 1  # O4-2


def test_a_reversal_after_payment_is_no_difference() -> None:
    reversed_ = order("O1", AttemptEvent.PAYER_CONFIRMING)
    for event in (AttemptEvent.REVERSAL_STARTED, AttemptEvent.REVERSED):
        reversed_.record_attempt("O1P1AAAAAA", event, NOON)
    # WeChat lists it REVOKED; Alipay and UnionPay as a payment and a refund row.
    assert kinds([row("O1P1AAAAAA", kept=False)], [reversed_]) == []
    assert kinds([row("O1P1AAAAAA"), row("O1P1AAAAAA", refund="cancel")], [reversed_]) == []


def test_a_late_success_already_refunded_is_explained() -> None:
    late = order("O1", AttemptEvent.DECLINED)
    late.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON)
    refund_id = late.refunds[0].refund_id
    late.record_refund(refund_id, succeeded=True, now=NOON)
    result = match(
        Channel.WECHAT, DAY, [row("O1P1AAAAAA"), row("O1P1AAAAAA", refund=refund_id)], [late], ZONE
    )
    assert result.differences == []
    assert result.refunds_matched_count == 1 and result.explained


def test_a_late_success_not_yet_refunded_stays_a_difference_to_heal() -> None:
    """Pending or refused, its money is not back: never "explained", healed again."""
    late = order("O1", AttemptEvent.DECLINED)
    late.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON)
    [pending] = match(Channel.WECHAT, DAY, [row("O1P1AAAAAA")], [late], ZONE).differences
    assert pending.heal and pending.refund_tries == 1 and "PENDING" in pending.detail
    late.record_refund(late.refunds[0].refund_id, succeeded=False, now=NOON, reason="NOT_ENOUGH")
    [refused] = match(Channel.WECHAT, DAY, [row("O1P1AAAAAA")], [late], ZONE).differences
    assert refused.heal and refused.refund_tries == 1 and "FAILED" in refused.detail
    # The heal's next try is another refund with a number of its own.
    late.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON + 1)
    first, second = late.refunds
    assert second.automatic and second.refund_id != first.refund_id
    late.record_refund(second.refund_id, succeeded=True, now=NOON + 2)
    rows = [row("O1P1AAAAAA"), row("O1P1AAAAAA", refund=second.refund_id)]
    assert match(Channel.WECHAT, DAY, rows, [late], ZONE).differences == []


def test_refund_differences() -> None:
    paid = order("O1", AttemptEvent.PAID)
    for amount in (1000, 2000):
        paid.request_refund(
            amount_fen=amount, reason="r", supervisor_id="S", terminal_id="T", request_id="q",
            now=NOON, nonce=f"AAAAA{amount // 1000}",
        )  # fmt: skip
        paid.record_refund(paid.refunds[-1].refund_id, succeeded=True, now=NOON)
    rows = [
        row("O1P1AAAAAA"),
        row("O1P1AAAAAA", 999, refund="O1P1AAAAAAR1AAAAA1"),
        row("O1P1AAAAAA", 50, refund="STRAY"),
    ]
    assert sorted(kinds(rows, [paid])) == sorted(
        [
            (Kind.AMOUNT_MISMATCH, "O1P1AAAAAA"),
            (Kind.MISSING_AT_WINDOWPAY, "O1P1AAAAAA"),
            (Kind.MISSING_AT_PROVIDER, "O1P1AAAAAA"),
        ]
    )


def test_a_settlement_day_that_ends_at_23_takes_the_evening_into_the_next_days_bill() -> None:
    """UnionPay's settlement file of day D holds D-1 23:00 to D 23:00 (Beijing time): a
    payment at 23:30 is on the next day's file, and neither day shows a difference."""
    from orchestrator.channels.unionpay.adapter import shift_of

    evening = int(datetime(2026, 11, 27, 15, 30, tzinfo=UTC).timestamp() * 1000)  # 23:30
    paid = order("O1", AttemptEvent.PAID)
    paid.attempts[0].finished_at = evening
    [attempt] = paid.attempts
    shift = shift_of("23:00")
    on_28 = match(Channel.WECHAT, DAY, [row(attempt.attempt_id)], [paid], ZONE, shift)
    assert (on_28.matched_count, on_28.differences) == (1, [])
    the_27th = date(2026, 11, 27)
    assert match(Channel.WECHAT, the_27th, [], [paid], ZONE, shift).differences == []
    # by calendar day the same payment belongs to the 27th, and is missing from its bill
    [missing] = match(Channel.WECHAT, the_27th, [], [paid], ZONE).differences
    assert missing.kind is Kind.MISSING_AT_PROVIDER


@pytest.mark.parametrize(
    ("ends", "hours"), [("23:00", 1.0), ("00:00", 0.0), ("22:30", 1.5), ("0:15", 23.75)]
)
def test_the_shift_of_a_settlement_day(ends: str, hours: float) -> None:
    from orchestrator.channels.unionpay.adapter import shift_of

    assert shift_of(ends).total_seconds() == hours * 3600


@pytest.mark.parametrize("ends", ["23", "24:00", "23:60", "eleven"])
def test_a_settlement_day_end_that_is_no_time_is_refused(ends: str) -> None:
    from orchestrator.channels.unionpay.adapter import shift_of

    with pytest.raises(ValueError, match=f"settlement_day_ends '{ends}' is not HH:MM"):
        shift_of(ends)
