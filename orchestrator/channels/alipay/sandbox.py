"""The Alipay OpenAPI sandbox gateway (one URL, the method in a parameter): trade.pay,
query, cancel, refund, precreate and the bill download URL. It verifies the app's RSA2
signature and signs the raw JSON text of every *_response it sends."""

from __future__ import annotations

import re
import secrets
import time
from datetime import date
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from orchestrator.channels.alipay.adapter import SIGNED_EXCEPT
from orchestrator.channels.alipay.notify import notification_params, signed_text
from orchestrator.channels.alipay.sandbox_bill import alipay_trade_bill
from orchestrator.domain.money import from_yuan, to_yuan
from orchestrator.providers.signing import sign, sorted_pairs, verify
from orchestrator.sandbox.bank import (
    BankReply,
    Refund,
    RefundState,
    Reply,
    SandboxBank,
    Trade,
    TradeState,
)
from orchestrator.sandbox.bills import local
from orchestrator.sandbox.common import Gateway, Notification

TRADE_STATUS = {
    TradeState.NOTPAY: "WAIT_BUYER_PAY",
    TradeState.SUCCESS: "TRADE_SUCCESS",
    TradeState.REFUND: "TRADE_SUCCESS",
    TradeState.USERPAYING: "WAIT_BUYER_PAY",
    TradeState.PAYERROR: "TRADE_CLOSED",
    TradeState.CLOSED: "TRADE_CLOSED",
    TradeState.REVOKED: "TRADE_CLOSED",
}
REFUND_REFUSALS = {
    "MERCHANT_BALANCE_LOW": "ACQ.SELLER_BALANCE_NOT_ENOUGH",
    "REFUND_AMOUNT_EXCEEDED": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    "TRADE_NOT_PAID": "ACQ.TRADE_STATUS_ERROR",
}
OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DECLINE_SUB_CODES = {
    "NOTENOUGH": "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    "AUTHCODEEXPIRE": "ACQ.PAYMENT_AUTH_CODE_INVALID",
    "AUTH_CODE_USED": "ACQ.PAYMENT_AUTH_CODE_INVALID",
}


class AlipayGateway(Gateway[Any]):
    name = "ALIPAY"

    def __init__(self, bank: SandboxBank, keys: Any, merchant_id: str) -> None:
        super().__init__(bank, keys, merchant_id)
        self._bills: dict[str, date] = {}
        self.app.add_routes(
            [web.post("/gateway.do", self._gateway), web.get("/bills/{token}", self._bill)]
        )

    async def _gateway(self, request: web.Request) -> web.Response:
        params = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        method = params.get("method", "")
        name = method.replace(".", "_") + "_response"
        signed = sorted_pairs(params, exclude=SIGNED_EXCEPT).encode()
        if params.get("app_id") != self.merchant_id or not verify(
            self.keys.peer_public, signed, params.get("sign", "")
        ):
            return self._answer("error_response", _failure("40002", "isv.invalid-signature"))
        try:
            biz = orjson.loads(params.get("biz_content", "{}"))
        except orjson.JSONDecodeError:
            return self._answer(name, _failure("40002", "isv.invalid-biz-content"))
        handler = {
            "alipay.trade.pay": self._pay,
            "alipay.trade.query": self._query,
            "alipay.trade.cancel": self._cancel,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
            "alipay.trade.precreate": self._precreate,
            "alipay.trade.close": self._close,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
        }.get(method)
        if handler is None:
            return self._answer("error_response", _failure("40002", "isv.invalid-method"))
        try:
            result = await handler(biz)
        except (KeyError, TypeError, ValueError):
            return self._answer(name, _failure("40002", "isv.missing-or-invalid-parameter"))
        if isinstance(result, web.Response):
            return result
        return self._answer(name, result)

    async def _pay(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        if biz["scene"] != "bar_code" or not OUT_TRADE_NO.match(biz["out_trade_no"]):
            return _failure("40002", "isv.invalid-parameter")
        reply = await self.bank.pay(
            biz["out_trade_no"], biz["auth_code"], from_yuan(biz["total_amount"]),
            biz.get("store_id", ""),
        )  # fmt: skip
        if reply.reply is Reply.ALREADY:
            return _failure("40004", "ACQ.TRADE_HAS_SUCCESS")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        told = reply.told or reply.trade.state
        if told is TradeState.USERPAYING:
            return {**_trade(reply.trade), "code": "10003", "msg": "order success pay inprocess"}
        if told is TradeState.PAYERROR:
            sub = DECLINE_SUB_CODES.get(reply.trade.reason, "ACQ.PAYMENT_FAIL")
            return _failure("40004", sub)
        if told in (TradeState.CLOSED, TradeState.REVOKED):
            return _failure("40004", "ACQ.TRADE_HAS_CLOSE")
        return {**_trade(reply.trade), "code": "10000", "msg": "Success"}

    async def _query(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        reply = await self.bank.query(biz["out_trade_no"])
        unscanned = reply.trade is not None and reply.trade.state is TradeState.NOTPAY
        if reply.reply is Reply.NOT_FOUND or unscanned:
            return _failure("40004", "ACQ.TRADE_NOT_EXIST")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return {
            **_trade(reply.trade),
            "code": "10000",
            "msg": "Success",
            "trade_status": TRADE_STATUS[reply.trade.state],
        }

    async def _cancel(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        before = self.bank.trade(biz["out_trade_no"])
        reply = await self.bank.reverse(biz["out_trade_no"])
        if reply.reply is Reply.RETRY:
            return {**_failure("40004", "ACQ.SYSTEM_ERROR"), "retry_flag": "Y"}
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        paid = before is not None and before.state in (TradeState.SUCCESS, TradeState.REFUND)
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": biz["out_trade_no"],
            "retry_flag": "N",
            "action": "refund" if paid else "close",
        }

    async def _refund(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        reply = await self.bank.refund(
            biz["out_trade_no"], biz["out_request_no"], from_yuan(biz["refund_amount"])
        )
        if reply.reply is Reply.NOT_FOUND:
            return _failure("40004", "ACQ.TRADE_NOT_EXIST")
        if reply.reply is Reply.REFUSED:
            return _failure(
                "40004", REFUND_REFUSALS.get(reply.reason, "ACQ.TRADE_NOT_ALLOW_REFUND")
            )
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None and reply.refund is not None
        # fund_change=Y only when this very call moved the money.
        moved = reply.reply is Reply.OK and reply.refund.state is RefundState.SUCCESS
        return {
            "code": "10000",
            "msg": "Success",
            "trade_no": reply.trade.trade_no,
            "out_trade_no": reply.trade.out_trade_no,
            "fund_change": "Y" if moved else "N",
            "refund_fee": to_yuan(reply.trade.refunded_fen),
        }

    async def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        reply = await self.bank.refund_status(biz["out_trade_no"], biz["out_request_no"])
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        if reply.reply is Reply.NOT_FOUND or reply.refund is None or reply.trade is None:
            return {"code": "10000", "msg": "Success"}  # the documented "no such refund"
        answer = {
            "code": "10000",
            "msg": "Success",
            "trade_no": reply.trade.trade_no,
            "out_trade_no": reply.trade.out_trade_no,
            "out_request_no": reply.refund.out_refund_no,
            "total_amount": to_yuan(reply.trade.amount_fen),
            "refund_amount": to_yuan(reply.refund.amount_fen),
        }
        if reply.refund.state is RefundState.SUCCESS:
            answer["refund_status"] = "REFUND_SUCCESS"
        return answer

    async def _precreate(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        if not OUT_TRADE_NO.match(biz["out_trade_no"]):
            return _failure("40002", "isv.invalid-parameter")
        minutes = int(str(biz.get("timeout_express", "120m")).removesuffix("m"))
        expires = time.time() + minutes * 60
        reply = await self.bank.create_qr(
            biz["out_trade_no"], from_yuan(biz["total_amount"]), biz.get("store_id", ""), expires
        )
        if reply.reply is Reply.REFUSED:
            return _failure("40004", "ACQ.CONTEXT_INCONSISTENT")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": reply.trade.out_trade_no,
            "qr_code": self.code_url(reply.trade),
        }

    async def _close(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        trade = self.bank.trade(biz["out_trade_no"])
        if trade is None or (trade.state is TradeState.NOTPAY and not trade.scanned):
            return _failure("40004", "ACQ.TRADE_NOT_EXIST")  # never scanned: no trade yet
        reply = await self.bank.close(biz["out_trade_no"])
        if reply.reply is Reply.ALREADY:
            return _failure("40004", "ACQ.TRADE_STATUS_ERROR")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": reply.trade.out_trade_no,
            "trade_no": reply.trade.trade_no,
        }

    async def _bill_url(self, biz: dict[str, Any]) -> dict[str, Any]:
        if biz["bill_type"] != "trade":
            return _failure("40004", "isv.invalid-bill-type")
        token = secrets.token_urlsafe(12)
        self._bills[token] = date.fromisoformat(biz["bill_date"])
        return {
            "code": "10000",
            "msg": "Success",
            "bill_download_url": f"{self.base_url}/bills/{token}",
        }

    async def _bill(self, request: web.Request) -> web.Response:
        day = self._bills.get(request.match_info["token"])
        if day is None:
            return web.Response(status=404, text="unknown bill")
        content = alipay_trade_bill(self.bank.trades(), day, self.merchant_id, time.time())
        return web.Response(body=content, content_type="application/zip")

    def _unusual(self, reply: BankReply) -> web.Response | dict[str, Any] | None:
        if reply.reply in (Reply.UNAVAILABLE, Reply.PROXY_ERROR):
            return web.Response(status=503, text="service unavailable")
        if reply.reply is Reply.SYSTEM_ERROR:
            return {
                "code": "20000",
                "msg": "Service Currently Unavailable",
                "sub_code": "isp.unknow-error",
            }
        return None

    def notification(self, trade: Trade, refund: Refund | None) -> Notification:
        """trade_status_sync: the trade's state, and for a refund its out_biz_no and fees."""
        fields = {
            "app_id": self.merchant_id,
            "notify_id": secrets.token_hex(16),
            "trade_status": TRADE_STATUS[trade.state],
            **{k: str(v) for k, v in _trade(trade).items()},
        }
        if refund is not None:
            fields["out_biz_no"] = refund.out_refund_no
            fields["refund_fee"] = to_yuan(trade.refunded_fen)
            fields["send_back_fee"] = to_yuan(refund.amount_fen)
            fields["gmt_refund"] = local(refund.at).strftime("%Y-%m-%d %H:%M:%S")
            if trade.refunded_fen >= trade.amount_fen:
                fields["trade_status"] = "TRADE_CLOSED"
        params = notification_params(fields, time.time())
        params["sign"] = sign(self.keys.private, signed_text(params))
        body = urlencode(params).encode()
        return Notification(
            body, "application/x-www-form-urlencoded; charset=utf-8", {}, expects="success"
        )

    def _answer(self, name: str, payload: dict[str, Any]) -> web.Response:
        raw = orjson.dumps(payload).decode()
        signature = sign(self.keys.private, raw.encode())
        text = f'{{"{name}":{raw},"sign":"{signature}"}}'
        return web.Response(text=text, content_type="application/json", charset="utf-8")


def _trade(trade: Trade) -> dict[str, Any]:
    record = {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "total_amount": to_yuan(trade.amount_fen),
        "buyer_logon_id": f"{trade.auth_code[:3]}***",
    }
    if trade.paid_at is not None:
        record["gmt_payment"] = local(trade.paid_at).strftime("%Y-%m-%d %H:%M:%S")
    return record


def _failure(code: str, sub_code: str) -> dict[str, Any]:
    messages = {"40002": "Invalid Arguments", "40004": "Business Failed"}
    return {"code": code, "msg": messages.get(code, "Failed"), "sub_code": sub_code}
