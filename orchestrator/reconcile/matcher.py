"""Matching one provider's bill for one day with windowpay's records (docs/DOMAIN.md §4,
invariant 7). Pure: it decides, the job acts.

Payment rows are matched by out_trade_no (the attempt id), refund rows by
out_refund_no (the refund id). Every difference is classified:

* missing_at_provider: windowpay took (or gave back) money the bill does not show;
* missing_at_windowpay: the bill shows money windowpay knows nothing of;
* amount_mismatch: both know it, with different amounts;
* state_mismatch: both know it, but disagree whether the money stayed;
* duplicate_success: a second attempt of an already paid order is paid at the provider.

A payment windowpay ended unpaid but the provider kept (state_mismatch or
duplicate_success) is a late success: it is safe to heal by refunding it (invariant 3).
The others are listed for a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from enum import StrEnum

from orchestrator.domain.calendar import local_day
from orchestrator.domain.order import Attempt, Order, Refund
from orchestrator.domain.states import AttemptState, Channel, RefundState
from orchestrator.providers.bills import BillRow


class Kind(StrEnum):
    MISSING_AT_PROVIDER = "missing_at_provider"
    MISSING_AT_WINDOWPAY = "missing_at_windowpay"
    AMOUNT_MISMATCH = "amount_mismatch"
    STATE_MISMATCH = "state_mismatch"
    DUPLICATE_SUCCESS = "duplicate_success"


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Kind
    provider: Channel
    out_trade_no: str
    out_refund_no: str
    windowpay_amount_fen: int
    provider_amount_fen: int
    detail: str
    order_id: str = ""
    heal: bool = False  # a late success: refund it
    trade_no: str = ""
    refund_tries: int = 0  # a late success: automatic refunds already tried


@dataclass
class Match:
    provider: Channel
    day: date
    bill_rows: int = 0
    matched_count: int = 0
    matched_amount_fen: int = 0
    refunds_matched_count: int = 0
    refunds_matched_amount_fen: int = 0
    explained: list[str] = field(default_factory=list)  # consistent, though not plain
    differences: list[Difference] = field(default_factory=list)


def _on(ms: int | None, day: date, zone: tzinfo, shift: timedelta) -> bool:
    return ms is not None and local_day(ms + shift // timedelta(milliseconds=1), zone).date() == day


def match(
    provider: Channel,
    day: date,
    rows: list[BillRow],
    orders: Iterable[Order],
    zone: tzinfo,
    bill_day_shift: timedelta = timedelta(0),
) -> Match:
    """`bill_day_shift`: the provider's bill of `day` holds what happened on the local
    day of (moment + shift), as ChannelSpec.bill_day_shift says."""
    result = Match(provider, day, bill_rows=len(rows))
    attempts: dict[str, tuple[Order, Attempt]] = {}
    refunds: dict[str, tuple[Order, Refund]] = {}
    for order in orders:
        for attempt in order.attempts:
            if attempt.channel is provider:
                attempts[attempt.attempt_id] = (order, attempt)
        for refund in order.refunds:
            if order.attempt(refund.attempt_id).channel is provider:
                refunds[refund.refund_id] = (order, refund)
    reversed_in_bill = {r.out_trade_no for r in rows if r.refund}
    seen_payments: set[str] = set()
    seen_refunds: set[str] = set()

    def differ(
        kind: Kind,
        row: BillRow | None,
        ours: int,
        detail: str,
        *,
        order_id: str,
        out_trade_no: str = "",
        out_refund_no: str = "",
        heal: bool = False,
        refund_tries: int = 0,
    ) -> None:
        result.differences.append(
            Difference(
                kind=kind,
                provider=provider,
                out_trade_no=row.out_trade_no if row else out_trade_no,
                out_refund_no=row.out_refund_no if row else out_refund_no,
                windowpay_amount_fen=ours,
                provider_amount_fen=row.amount_fen if row else 0,
                detail=detail,
                order_id=order_id,
                heal=heal,
                refund_tries=refund_tries,
                trade_no=row.trade_no if row else "",
            )
        )

    for row in rows:
        if row.refund:
            continue
        seen_payments.add(row.out_trade_no)
        known = attempts.get(row.out_trade_no)
        if known is None:
            differ(Kind.MISSING_AT_WINDOWPAY, row, 0, "a payment windowpay never made", order_id="")
            continue
        order, attempt = known
        automatic = [r for r in order.refunds if r.automatic and r.attempt_id == attempt.attempt_id]
        if attempt.state is AttemptState.SUCCEEDED:
            if not row.kept:
                differ(
                    Kind.STATE_MISMATCH,
                    row,
                    attempt.amount_fen,
                    "the provider reversed a payment windowpay counts",
                    order_id=order.order_id,
                )
            elif row.amount_fen != attempt.amount_fen:
                differ(
                    Kind.AMOUNT_MISMATCH,
                    row,
                    attempt.amount_fen,
                    "payment amounts differ",
                    order_id=order.order_id,
                )
            else:
                result.matched_count += 1
                result.matched_amount_fen += row.amount_fen
        elif not row.kept or (row.out_trade_no in reversed_in_bill and not automatic):
            result.explained.append(f"{row.out_trade_no}: paid, then reversed at the provider")
        elif any(r.state is RefundState.SUCCEEDED for r in automatic):
            result.explained.append(f"{row.out_trade_no}: late success, refunded")
        else:
            # Not given back yet: never refunded, its refund still pending, or refused.
            duplicate = bool(order.paid_by) and order.paid_by != attempt.attempt_id
            refund_now = f"; its refund is {automatic[-1].state.value}" if automatic else ""
            differ(
                Kind.DUPLICATE_SUCCESS if duplicate else Kind.STATE_MISMATCH,
                row,
                0,
                f"paid at the provider, {attempt.state.value} at windowpay"
                + (f"; the order was paid by {order.paid_by}" if duplicate else "")
                + refund_now,
                order_id=order.order_id,
                heal=True,
                refund_tries=len(automatic),
            )
    for order, attempt in attempts.values():
        if (
            attempt.state is AttemptState.SUCCEEDED
            and _on(attempt.finished_at, day, zone, bill_day_shift)
            and attempt.attempt_id not in seen_payments
        ):
            differ(
                Kind.MISSING_AT_PROVIDER,
                None,
                attempt.amount_fen,
                "a payment the bill does not show",
                out_trade_no=attempt.attempt_id,
                order_id=order.order_id,
            )

    for row in rows:
        if not row.refund:
            continue
        seen_refunds.add(row.out_refund_no)
        known_refund = refunds.get(row.out_refund_no)
        if known_refund is None:
            known = attempts.get(row.out_trade_no)
            if known is not None and known[1].state is AttemptState.REVERSED:
                result.explained.append(f"{row.out_trade_no}: reversal shown as a refund")
            else:
                differ(
                    Kind.MISSING_AT_WINDOWPAY, row, 0, "a refund windowpay never made", order_id=""
                )
            continue
        order, refund = known_refund
        if refund.state is not RefundState.SUCCEEDED:
            differ(
                Kind.STATE_MISMATCH,
                row,
                refund.amount_fen,
                f"refunded at the provider, {refund.state.value} at windowpay",
                order_id=order.order_id,
            )
        elif row.amount_fen != refund.amount_fen:
            differ(
                Kind.AMOUNT_MISMATCH,
                row,
                refund.amount_fen,
                "refund amounts differ",
                order_id=order.order_id,
            )
        else:
            result.refunds_matched_count += 1
            result.refunds_matched_amount_fen += row.amount_fen
    for order, refund in refunds.values():
        if (
            refund.state is RefundState.SUCCEEDED
            and _on(refund.finished_at, day, zone, bill_day_shift)
            and refund.refund_id not in seen_refunds
        ):
            differ(
                Kind.MISSING_AT_PROVIDER,
                None,
                refund.amount_fen,
                "a refund the bill does not show",
                out_trade_no=refund.attempt_id,
                out_refund_no=refund.refund_id,
                order_id=order.order_id,
            )
    return result
