"""The bodies the WeChat Pay sandbox answers with, shaped as the published samples
(tests/fixtures/wire/wechat/, checked by tests/conformance/wechat/test_sandbox_shape.py):
no field the real gateway does not send, and the ones it always sends."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from orchestrator.channels.wechat.accounts import Account
from orchestrator.sandbox.bank import RefundState, Trade, TradeRefund, TradeState

STATE_TEXT = {
    TradeState.SUCCESS: "支付成功",
    TradeState.REFUND: "转入退款",
    TradeState.NOTPAY: "未支付",
    TradeState.USERPAYING: "用户支付中",
    TradeState.PAYERROR: "支付失败",
    TradeState.CLOSED: "已关闭",
    TradeState.REVOKED: "已撤销",
}
# WeChat documents USERPAYING and PAYERROR for code payments only: a Native trade the
# payer has scanned, or failed to pay, is still NOTPAY (still payable) until it is closed.
NATIVE_UNPAID = {TradeState.USERPAYING, TradeState.PAYERROR}


def rfc3339(moment: float) -> str:
    """Beijing time, as WeChat Pay writes every time: 2018-06-08T10:34:56+08:00."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(moment + 8 * 3600))


def reported_state(trade: Trade) -> TradeState:
    if trade.qr_token and trade.state in NATIVE_UNPAID:
        return TradeState.NOTPAY
    return trade.state


def openid(trade: Trade) -> str:
    """A stable made-up openid of the payer behind the trade."""
    seed = (trade.auth_code or trade.out_trade_no).encode()
    return "o" + hashlib.sha1(seed, usedforsecurity=False).hexdigest()[:27]


def trade_answer(trade: Trade, account: Account) -> dict[str, Any]:
    """商户订单号查询订单 (and a paid codepay's 200): the trade as WeChat Pay reports it."""
    state = reported_state(trade)
    record: dict[str, Any] = {
        **account.ids(),
        "out_trade_no": trade.out_trade_no,
        "trade_type": "NATIVE" if trade.qr_token else "MICROPAY",
        "trade_state": state.value,
        "trade_state_desc": STATE_TEXT[state],
        "amount": {"total": trade.amount_fen, "currency": "CNY"},
    }
    if trade.paid_at is not None:
        payer_key = "sub_openid" if account.partner else "openid"
        record.update(
            transaction_id=trade.trade_no,
            bank_type="OTHERS",
            success_time=rfc3339(trade.paid_at),
            payer={payer_key: openid(trade)},
        )
        record["amount"].update(payer_total=trade.amount_fen, payer_currency="CNY")
    return record


def reverse_answer(out_trade_no: str, account: Account) -> dict[str, Any]:
    """撤销's 200: the trade named, nothing more (the v3 answer has no `recall`)."""
    return {**account.ids(), "out_trade_no": out_trade_no}


def refund_answer(trade: Trade, refund: TradeRefund) -> dict[str, Any]:
    """申请退款 / 查询单笔退款: the refund."""
    record: dict[str, Any] = {
        "refund_id": refund.refund_no,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(refund.at),
        "status": refund.state.value,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": trade.amount_fen,
            "refund": refund.amount_fen,
            "payer_total": trade.amount_fen,
            "payer_refund": refund.amount_fen,
            "settlement_refund": refund.amount_fen,
            "settlement_total": trade.amount_fen,
            "discount_refund": 0,
            "currency": "CNY",
        },
    }
    if refund.state is RefundState.SUCCESS:
        record["success_time"] = rfc3339(refund.done_at or refund.at)
    return record


def refund_notice(trade: Trade, refund: TradeRefund, account: Account) -> dict[str, Any]:
    """退款结果通知's resource (decrypted)."""
    return {
        **account.merchant_ids(),
        "transaction_id": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "refund_id": refund.refund_no,
        "out_refund_no": refund.out_refund_no,
        "refund_status": refund.state.value,
        "success_time": rfc3339(refund.done_at or refund.at),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": trade.amount_fen,
            "refund": refund.amount_fen,
            "payer_total": trade.amount_fen,
            "payer_refund": refund.amount_fen,
        },
    }


def param_error(field: str, value: Any, issue: str) -> dict[str, Any]:
    """400 PARAM_ERROR with its `detail`, as the API rules describe it."""
    return {
        "code": "PARAM_ERROR",
        "message": f"参数错误: {issue}",
        "detail": {"field": field, "value": value, "issue": issue, "location": "body"},
    }
