"""What every channel's sandbox bill (orchestrator/channels/<name>/sandbox_bill.py) reads
from a sandbox ledger: the day's payments and refunds, in Beijing time. The formats
(docs/DOMAIN.md §6):

* WeChat: CSV, every field prefixed with a backtick, a header row, data rows, then a
  summary header and one summary row; CRLF lines; amounts in yuan.
* Alipay: a zip holding a GBK CSV: '#' header lines, the 25-column detail table (refunds
  as rows of their own with negative amounts, ids ending with a tab), '#' totals.
* UnionPay: the acquirer's settlement file, '|'-separated: a header, one line per sale,
  void, refund or reversal, and a trailer with counts and sums (amounts in fen).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

from orchestrator.sandbox.bank import Refund, RefundState, Trade, TradeState

BEIJING = ZoneInfo("Asia/Shanghai")
PAID_STATES = (TradeState.SUCCESS, TradeState.REFUND, TradeState.REVOKED)


def local(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, BEIJING)


def on_day(timestamp: float | None, day: date) -> bool:
    return timestamp is not None and local(timestamp).date() == day


def payments(trades: Iterable[Trade], day: date) -> Iterator[Trade]:
    for trade in sorted(trades, key=lambda t: t.paid_at or 0):
        if trade.state in PAID_STATES and on_day(trade.paid_at, day):
            yield trade


def refunds(trades: Iterable[Trade], day: date) -> Iterator[tuple[Trade, Refund]]:
    for trade in trades:
        for refund in trade.refunds:
            if refund.state is RefundState.SUCCESS and on_day(refund.at, day):
                yield trade, refund


def stamp(timestamp: float) -> str:
    return local(timestamp).strftime("%Y-%m-%d %H:%M:%S")
