"""WeChat Pay's daily bill as its sandbox gateway serves it, from the sandbox ledger
(docs/DOMAIN.md §6)."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import date

from orchestrator.domain.money import to_yuan
from orchestrator.sandbox.bank import Trade, TradeState
from orchestrator.sandbox.bills import payments, refunds, stamp

WECHAT_COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
WECHAT_SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def _payer(trade: Trade) -> str:
    """A stable made-up openid for the payer behind the auth code."""
    return "o" + hashlib.sha1(trade.auth_code.encode(), usedforsecurity=False).hexdigest()[:27]


def wechat_trade_bill(trades: list[Trade], day: date, appid: str, mchid: str) -> bytes:
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
                stamp(trade.paid_at), appid, mchid, "0", trade.store_id, trade.trade_no,
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
                stamp(refund.at), appid, mchid, "0", trade.store_id, trade.trade_no,
                trade.out_trade_no, _payer(trade), "MICROPAY", "REFUND", "OTHERS", "CNY",
                "0.00", "0.00", refund.refund_no, refund.out_refund_no,
                to_yuan(refund.amount_fen), "0.00", "ORIGINAL", "SUCCESS", "windowpay", "",
                "0.00000", "0.00%", to_yuan(trade.amount_fen), to_yuan(refund.amount_fen), "",
            ]
        )  # fmt: skip
    summary = [
        str(len(rows)), to_yuan(settled), to_yuan(refunded), "0.00", "0.00000",
        to_yuan(ordered), to_yuan(refunded),
    ]  # fmt: skip
    lines = [WECHAT_COLUMNS, *(_ticked(r) for r in rows), WECHAT_SUMMARY, _ticked(summary)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _ticked(fields: list[str]) -> str:
    """One bill line: every field with its backtick, quoted when it holds a comma."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(f"`{field}" for field in fields)
    return line.getvalue()


def ledger_bill(trades: list[Trade], day: date) -> bytes:
    """The day's bill of an in-process sandbox ledger (orchestrator/channels/inprocess.py)."""
    return wechat_trade_bill(trades, day, "wx-sandbox", "sandbox")
