"""The matcher's whole answer, every difference with every field, written for the mutants
of reconcile/matcher.py that `make mutate` found alive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, Channel
from orchestrator.providers.bills import BillRow
from orchestrator.reconcile.matcher import Difference, Kind, Match, match
from tests.unit.test_matcher import DAY, NOON, ZONE, order

AT = datetime(2026, 11, 28, 12, 0)


def row(
    out_trade_no: str, amount: int = 8000, *, refund: str = "", kept: bool = True, trade: str = ""
) -> BillRow:
    return BillRow(
        Channel.WECHAT, bool(refund), out_trade_no, refund, trade or f"W{out_trade_no}", amount,
        kept, AT,
    )  # fmt: skip


def refunded(paid: Order, amount: int, nonce: str, *, succeeded: bool | None = True) -> str:
    paid.request_refund(
        amount_fen=amount, reason="r", supervisor_id="S", terminal_id="T", request_id="q",
        now=NOON, nonce=nonce,
    )  # fmt: skip
    refund_id = paid.refunds[-1].refund_id
    if succeeded is not None:
        paid.record_refund(refund_id, succeeded=succeeded, now=NOON)
    return refund_id


def test_payment_differences_with_every_field() -> None:
    paid = order("O1", AttemptEvent.PAID)
    missing = order("O2", AttemptEvent.PAID)
    declined = order("O3", AttemptEvent.DECLINED)
    twice = order("O4", AttemptEvent.DECLINED, AttemptEvent.PAID)
    reversed_at_provider = order("O5", AttemptEvent.PAID)
    fine = order("O6", AttemptEvent.PAID)
    rows = [
        row("O1P1AAAAAA", 8001),
        row("GHOST", 5000),
        row("O3P1AAAAAA"),
        row("O4P1AAAAAA"),
        row("O4P2AAAAAA"),
        row("O5P1AAAAAA", kept=False),
        row("O6P1AAAAAA"),
    ]
    orders = [paid, missing, declined, twice, reversed_at_provider, fine]
    result = match(Channel.WECHAT, DAY, rows, orders, ZONE)
    w = Channel.WECHAT
    assert result == Match(
        provider=w, day=DAY, bill_rows=7, matched_count=2, matched_amount_fen=16000,
        differences=[
            Difference(Kind.AMOUNT_MISMATCH, w, "O1P1AAAAAA", "", 8000, 8001,
                       "payment amounts differ", "O1", trade_no="WO1P1AAAAAA"),
            Difference(Kind.MISSING_AT_WINDOWPAY, w, "GHOST", "", 0, 5000,
                       "a payment windowpay never made", "", trade_no="WGHOST"),
            Difference(Kind.STATE_MISMATCH, w, "O3P1AAAAAA", "", 0, 8000,
                       "paid at the provider, FAILED at windowpay", "O3", heal=True,
                       trade_no="WO3P1AAAAAA"),
            Difference(Kind.DUPLICATE_SUCCESS, w, "O4P1AAAAAA", "", 0, 8000,
                       "paid at the provider, FAILED at windowpay; the order was paid by "
                       "O4P2AAAAAA", "O4", heal=True, trade_no="WO4P1AAAAAA"),
            Difference(Kind.STATE_MISMATCH, w, "O5P1AAAAAA", "", 8000, 8000,
                       "the provider reversed a payment windowpay counts", "O5",
                       trade_no="WO5P1AAAAAA"),
            Difference(Kind.MISSING_AT_PROVIDER, w, "O2P1AAAAAA", "", 8000, 0,
                       "a payment the bill does not show", "O2"),
        ],
    )  # fmt: skip


def test_refund_differences_with_every_field() -> None:
    paid = order("O1", AttemptEvent.PAID)
    amount_off = refunded(paid, 1000, "AAAAA1")
    not_in_bill = refunded(paid, 2000, "AAAAA2")
    pending = refunded(paid, 500, "AAAAA3", succeeded=None)
    fine = refunded(paid, 700, "AAAAA4")
    rows = [
        row("O1P1AAAAAA"),
        row("O1P1AAAAAA", 999, refund=amount_off),
        row("O1P1AAAAAA", 50, refund="STRAY"),
        row("O1P1AAAAAA", 500, refund=pending),
        row("O1P1AAAAAA", 700, refund=fine),
    ]
    result = match(Channel.WECHAT, DAY, rows, [paid], ZONE)
    w = Channel.WECHAT
    assert result == Match(
        provider=w, day=DAY, bill_rows=5, matched_count=1, matched_amount_fen=8000,
        refunds_matched_count=1, refunds_matched_amount_fen=700,
        differences=[
            Difference(Kind.AMOUNT_MISMATCH, w, "O1P1AAAAAA", amount_off, 1000, 999,
                       "refund amounts differ", "O1", trade_no="WO1P1AAAAAA"),
            Difference(Kind.MISSING_AT_WINDOWPAY, w, "O1P1AAAAAA", "STRAY", 0, 50,
                       "a refund windowpay never made", "", trade_no="WO1P1AAAAAA"),
            Difference(Kind.STATE_MISMATCH, w, "O1P1AAAAAA", pending, 500, 500,
                       "refunded at the provider, PENDING at windowpay", "O1",
                       trade_no="WO1P1AAAAAA"),
            Difference(Kind.MISSING_AT_PROVIDER, w, "O1P1AAAAAA", not_in_bill, 2000, 0,
                       "a refund the bill does not show", "O1"),
        ],
    )  # fmt: skip


def test_what_is_explained_is_said() -> None:
    late = order("O1", AttemptEvent.DECLINED)
    late.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON)
    late.record_refund(late.refunds[0].refund_id, succeeded=True, now=NOON)
    reversed_ = order("O2", AttemptEvent.PAYER_CONFIRMING)
    for event in (AttemptEvent.REVERSAL_STARTED, AttemptEvent.REVERSED):
        reversed_.record_attempt("O2P1AAAAAA", event, NOON)
    revoked = order("O3", AttemptEvent.DECLINED)
    rows = [
        row("O1P1AAAAAA"),
        row("O1P1AAAAAA", refund=late.refunds[0].refund_id),
        row("O2P1AAAAAA"),
        row("O2P1AAAAAA", refund="cancel"),
        row("O3P1AAAAAA", kept=False),
    ]
    result = match(Channel.WECHAT, DAY, rows, [late, reversed_, revoked], ZONE)
    assert result.differences == []
    assert result.explained == [
        "O1P1AAAAAA: late success, refunded",
        "O2P1AAAAAA: paid, then reversed at the provider",
        "O3P1AAAAAA: paid, then reversed at the provider",
        "O2P1AAAAAA: reversal shown as a refund",
    ]


def test_a_late_success_with_its_refund_refused_names_the_refunds_state() -> None:
    late = order("O1", AttemptEvent.DECLINED)
    late.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON)
    late.record_refund(late.refunds[0].refund_id, succeeded=False, now=NOON, reason="x")
    late.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON)
    # a reversal row of the same trade does not explain a late success being refunded
    rows = [row("O1P1AAAAAA"), row("O1P1AAAAAA", refund="cancel")]
    [difference, stray] = match(Channel.WECHAT, DAY, rows, [late], ZONE).differences
    assert (stray.kind, stray.out_refund_no) == (Kind.MISSING_AT_WINDOWPAY, "cancel")
    assert difference == Difference(
        Kind.STATE_MISMATCH, Channel.WECHAT, "O1P1AAAAAA", "", 0, 8000,
        "paid at the provider, FAILED at windowpay; its refund is PENDING", "O1", heal=True,
        trade_no="WO1P1AAAAAA", refund_tries=2,
    )  # fmt: skip


def test_another_providers_records_and_another_days_are_left_alone() -> None:
    paid = order("O1", AttemptEvent.PAID)
    refunded(paid, 1000, "AAAAA1")
    result = match(Channel.ALIPAY, DAY, [], [paid], ZONE)
    assert result == Match(Channel.ALIPAY, DAY)
    assert match(Channel.WECHAT, date(2026, 11, 29), [], [paid], ZONE).differences == []
    # shifted by a day, the bill of the 29th is the one that holds them
    shifted = match(Channel.WECHAT, date(2026, 11, 29), [], [paid], ZONE, timedelta(days=1))
    assert [d.kind for d in shifted.differences] == [Kind.MISSING_AT_PROVIDER] * 2
    # an attempt not finished yet is on no day's bill
    paid.attempts[0].finished_at = None
    paid.refunds[0].finished_at = None
    assert match(Channel.WECHAT, DAY, [], [paid], ZONE).differences == []
    # a moment just past midnight UTC+8 is the next local day
    paid.attempts[0].finished_at = int(datetime(2026, 11, 28, 16, 0, tzinfo=UTC).timestamp() * 1e3)
    assert match(Channel.WECHAT, DAY, [], [paid], ZONE).differences == []


def test_a_shifted_bill_day_moves_by_the_whole_shift() -> None:
    paid = order("O1", AttemptEvent.PAID)
    # 23:10 in China on the 27th: with a one-hour shift it is on the 28th's bill
    paid.attempts[0].finished_at = int(datetime(2026, 11, 27, 15, 10, tzinfo=UTC).timestamp() * 1e3)
    on_28 = match(Channel.WECHAT, DAY, [], [paid], ZONE, timedelta(hours=1))
    assert [d.kind for d in on_28.differences] == [Kind.MISSING_AT_PROVIDER]
    assert match(Channel.WECHAT, date(2026, 11, 27), [], [paid], ZONE, timedelta(hours=1)) == (
        Match(Channel.WECHAT, date(2026, 11, 27))
    )


def test_a_late_success_is_told_apart_from_anothers_given_back() -> None:
    twice = order("O1", AttemptEvent.DECLINED, AttemptEvent.DECLINED)
    twice.record_attempt("O1P1AAAAAA", AttemptEvent.LATE_SUCCESS, NOON)
    given_back = twice.refunds[0].refund_id
    twice.record_refund(given_back, succeeded=True, now=NOON)
    rows = [row("O1P1AAAAAA"), row("O1P1AAAAAA", refund=given_back), row("O1P2AAAAAA")]
    result = match(Channel.WECHAT, DAY, rows, [twice], ZONE)
    assert result.explained == ["O1P1AAAAAA: late success, refunded"]
    assert result.differences == [
        Difference(
            Kind.STATE_MISMATCH, Channel.WECHAT, "O1P2AAAAAA", "", 0, 8000,
            "paid at the provider, FAILED at windowpay", "O1", heal=True,
            trade_no="WO1P2AAAAAA",
        )
    ]  # fmt: skip


def test_every_matched_refund_is_counted_and_summed() -> None:
    paid = order("O1", AttemptEvent.PAID)
    first = refunded(paid, 1000, "AAAAA1")
    second = refunded(paid, 2500, "AAAAA2")
    rows = [row("O1P1AAAAAA"), row("O1P1AAAAAA", 1000, refund=first)]
    rows.append(row("O1P1AAAAAA", 2500, refund=second))
    result = match(Channel.WECHAT, DAY, rows, [paid], ZONE)
    assert (result.refunds_matched_count, result.refunds_matched_amount_fen) == (2, 3500)
    assert result.differences == []


@pytest.fixture
def machine_on_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own zone set to UTC, so a day read in it and not in the bill's zone
    (UTC+8) is a different day."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_on_utc")
def test_a_refund_is_on_the_bill_of_its_day_in_the_bills_zone() -> None:
    paid = order("O1", AttemptEvent.PAID)
    refunded(paid, 1000, "AAAAA1")
    # 16:00 UTC on the 28th is midnight starting the 29th in China
    paid.refunds[0].finished_at = int(datetime(2026, 11, 28, 16, 0, tzinfo=UTC).timestamp() * 1e3)
    on_28 = match(Channel.WECHAT, DAY, [row("O1P1AAAAAA")], [paid], ZONE)
    assert on_28.differences == []
    on_29 = match(Channel.WECHAT, date(2026, 11, 29), [], [paid], ZONE)
    assert [(d.kind, d.out_refund_no) for d in on_29.differences] == [
        (Kind.MISSING_AT_PROVIDER, paid.refunds[0].refund_id)
    ]
