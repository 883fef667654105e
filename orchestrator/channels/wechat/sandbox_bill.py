"""WeChat Pay's daily bill as its sandbox gateway serves it, from the sandbox ledger
(docs/DOMAIN.md §6)."""

from __future__ import annotations

import hashlib
from datetime import date

from orchestrator.channels.wechat.bill import COLUMNS, SUMMARY, empty_bill, ticked
from orchestrator.domain.money import to_yuan
from orchestrator.sandbox.bank import Trade, TradeState
from orchestrator.sandbox.bills import payments, refunds, stamp


def _payer(trade: Trade) -> str:
    """A stable made-up openid for the payer behind the auth code."""
    return "o" + hashlib.sha1(trade.auth_code.encode(), usedforsecurity=False).hexdigest()[:27]


def wechat_trade_bill(
    trades: list[Trade], day: date, appid: str, mchid: str, sub_mchid: str = "0"
) -> bytes:
    """The day's bill; b"" when the day had no trades (the gateway then answers
    NO_STATEMENT_EXIST, as WeChat Pay does). In partner mode `sub_mchid` fills the
    特约商户号 column."""
    rows: list[list[str]] = []
    settled = refunded = ordered = 0
    for trade in payments(trades, day):
        assert trade.paid_at is not None
        kept = trade.state is not TradeState.REVOKED
        state = "SUCCESS" if kept else "REVOKED"
        settled += trade.amount_fen if kept else 0
        ordered += trade.amount_fen
        rows.append(
            [
                stamp(trade.paid_at), appid, mchid, sub_mchid, trade.store_id, trade.trade_no,
                trade.out_trade_no, _payer(trade), "MICROPAY", state, "OTHERS", "CNY",
                to_yuan(trade.amount_fen if kept else 0), "0.00", "0", "0", "0.00", "0.00",
                "", "", "windowpay", "", "0.00000", "0.00%", to_yuan(trade.amount_fen),
                "0.00", "",
            ]
        )  # fmt: skip
    for trade, refund in refunds(trades, day):
        refunded += refund.amount_fen
        rows.append(
            [
                stamp(refund.at), appid, mchid, sub_mchid, trade.store_id, trade.trade_no,
                trade.out_trade_no, _payer(trade), "MICROPAY", "REFUND", "OTHERS", "CNY",
                "0.00", "0.00", refund.refund_no, refund.out_refund_no,
                to_yuan(refund.amount_fen), "0.00", "ORIGINAL", "SUCCESS", "windowpay", "",
                "0.00000", "0.00%", to_yuan(trade.amount_fen), to_yuan(refund.amount_fen), "",
            ]
        )  # fmt: skip
    if not rows:
        return b""
    summary = [
        str(len(rows)), to_yuan(settled), to_yuan(refunded), "0.00", "0.00000",
        to_yuan(ordered), to_yuan(refunded),
    ]  # fmt: skip
    lines = [COLUMNS, *(ticked(r) for r in rows), SUMMARY, ticked(summary)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def ledger_bill(trades: list[Trade], day: date) -> bytes:
    """The day's bill of an in-process sandbox ledger (orchestrator/channels/inprocess.py),
    as the adapter hands it on: a day without trades is the empty bill."""
    return wechat_trade_bill(trades, day, "wx-sandbox", "sandbox") or empty_bill()
