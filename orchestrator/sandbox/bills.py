"""What every channel's sandbox bill (orchestrator/channels/<name>/sandbox_bill.py) reads
from a sandbox ledger: the day's payments and refunds, in Beijing time. The formats
(docs/DOMAIN.md §6):

* WeChat: CSV, every field prefixed with a backtick, a header row, data rows, then a
  summary header and one summary row; CRLF lines; amounts in yuan.
* Alipay: a zip holding a GBK CSV: '#' header lines, the 25-column detail table (refunds
  as rows of their own with negative amounts, ids ending with a tab), '#' totals.
* UnionPay: the merchant's settlement file of a settlement day (清算日, to 23:00 Beijing
  time): a zip of fixed-width GBK lines, one per sale, void and refund.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.sandbox.bank import RefundState, Trade, TradeRefund, TradeState

BEIJING = ZoneInfo("Asia/Shanghai")
PAID_STATES = (TradeState.SUCCESS, TradeState.REFUND, TradeState.REVOKED)


def local(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, BEIJING)


def on_day(timestamp: float | None, day: date, shift: timedelta = timedelta(0)) -> bool:
    """Whether a moment is on the bill of `day`, whose day is shifted by `shift` (the
    channel's bill_day_shift: UnionPay's settlement day ends at 23:00)."""
    return timestamp is not None and (local(timestamp) + shift).date() == day


def payments(
    trades: Iterable[Trade], day: date, shift: timedelta = timedelta(0)
) -> Iterator[Trade]:
    for trade in sorted(trades, key=lambda t: t.paid_at or 0):
        if trade.state in PAID_STATES and on_day(trade.paid_at, day, shift):
            yield trade


def refunds(
    trades: Iterable[Trade], day: date, shift: timedelta = timedelta(0)
) -> Iterator[tuple[Trade, TradeRefund]]:
    for trade in trades:
        for refund in trade.refunds:
            if refund.state is RefundState.SUCCESS and on_day(refund.at, day, shift):
                yield trade, refund


def stamp(timestamp: float) -> str:
    return local(timestamp).strftime("%Y-%m-%d %H:%M:%S")
