"""The Alipay OpenAPI sandbox gateway (one URL, the method in a parameter): trade.pay,
query, cancel, refund and its query, precreate and close, and the bill download URL. It
verifies the app's RSA2 signature and signs the raw JSON text of every *_response it
sends, written as the real gateway writes it (compact JSON, every "/" escaped with a
backslash, other text as UTF-8), with only fields the real gateway sends (the
conformance suite checks both against the public samples). A request it cannot take as
the app's (an unknown app_id, a bad signature) is answered unsigned, as the documented
error sample is. In certificate mode it checks the request's app_cert_sn and
alipay_root_cert_sn, names its certificate in alipay_cert_sn, and hands its certificate
file out by alipay.open.app.alipaycert.download.

Where it models Alipay rather than the shared ledger: a precreate trade the payer failed
to pay stays WAIT_BUYER_PAY (Alipay sends no failed state for it) until it is closed, by
windowpay or by its own timeout_express; a refund still processing is not shown by the
refund query (the older contract: a refund shown is a refund done); a day without trades
has no bill (isp.bill_not_exist). Unlike the real gateway it serves a day's bill at once."""

from __future__ import annotations

import base64
import hashlib
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
from orchestrator.channels.alipay.trust import GatewayKeys
from orchestrator.domain.money import from_yuan, to_yuan
from orchestrator.providers.signing import sign, sorted_pairs, verify
from orchestrator.sandbox.bank import (
    BankReply,
    RefundState,
    Reply,
    SandboxBank,
    Trade,
    TradeRefund,
    TradeState,
)
from orchestrator.sandbox.bills import local, payments, refunds
from orchestrator.sandbox.common import Gateway, Notification

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SANDBOX_PID = "2088000000000001"  # the sandbox merchant's PID when none is configured
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
    # with out_request_no (windowpay always sends one) more than is left: the live answer
    "REFUND_AMOUNT_EXCEEDED": "ACQ.REASON_TRADE_REFUND_FEE_ERR",
    "TRADE_NOT_PAID": "ACQ.TRADE_STATUS_ERROR",
}
OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DECLINE_SUB_CODES = {
    "NOTENOUGH": "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    "AUTHCODEEXPIRE": "ACQ.PAYMENT_AUTH_CODE_INVALID",
    "AUTH_CODE_USED": "ACQ.PAYMENT_AUTH_CODE_INVALID",
}
# sub_msg as the API reference's error-code tables word them
SUB_MESSAGES = {
    "ACQ.TRADE_HAS_SUCCESS": "交易已被支付",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "买家余额不足",
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "支付授权码无效",
    "ACQ.PAYMENT_FAIL": "支付失败",
    "ACQ.TRADE_HAS_CLOSE": "交易已经关闭",
    "ACQ.TRADE_NOT_EXIST": "交易不存在",
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": "卖家余额不足",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "撤销或退款金额与订单金额不一致",
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": "REASON_TRADE_REFUND_FEE_ERR",  # as a live answer
    "ACQ.TRADE_STATUS_ERROR": "交易状态不合法",
    "ACQ.TRADE_NOT_ALLOW_REFUND": "当前交易不允许退款",
    "ACQ.CONTEXT_INCONSISTENT": "交易信息被篡改",
    "ACQ.SYSTEM_ERROR": "系统错误",
    "isp.unknow-error": "系统繁忙",
    "isp.bill_not_exist": "账单不存在",
    "isv.invalid-signature": "验签出错",
    "isv.invalid-app-id": "无效的AppID参数",
    "isv.alipay-cert-not-exist": "支付宝公钥证书不存在",
    "isv.app-cert-not-exist": "应用公钥证书不存在",
    "isv.invalid-alipay-root-cert-sn": "支付宝根证书SN无效",
}


class AlipayGateway(Gateway[GatewayKeys]):
    name = "ALIPAY"

    def __init__(
        self, bank: SandboxBank, keys: GatewayKeys, merchant_id: str, seller_id: str = ""
    ) -> None:
        super().__init__(bank, keys, merchant_id)
        self.seller_id = seller_id or SANDBOX_PID  # the merchant's PID, in notifications
        self._bills: dict[str, date] = {}
        self.app.add_routes(
            [web.post("/gateway.do", self._gateway), web.get("/bills/{token}", self._bill)]
        )

    async def _gateway(self, request: web.Request) -> web.Response:
        params = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        method = params.get("method", "")
        name = method.replace(".", "_") + "_response"
        signed = sorted_pairs(params, exclude=SIGNED_EXCEPT).encode()
        # A request the gateway cannot take as the app's is answered unsigned, as the
        # documented error sample is.
        if params.get("app_id") != self.merchant_id:
            failure = _failure("40002", "isv.invalid-app-id")
            return self._answer("error_response", failure, signed=False)
        if not verify(self.keys.app_public, signed, params.get("sign", "")):
            failure = _failure("40002", "isv.invalid-signature")
            return self._answer("error_response", failure, signed=False)
        if params.get("app_cert_sn", "") != self.keys.expected.get("app_cert_sn", ""):
            return self._answer(name, _failure("40002", "isv.app-cert-not-exist"))
        root_sn = self.keys.expected.get("alipay_root_cert_sn", "")
        if params.get("alipay_root_cert_sn", "") != root_sn:
            return self._answer(name, _failure("40002", "isv.invalid-alipay-root-cert-sn"))
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
            "alipay.open.app.alipaycert.download": self._certificate,
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
        paid = _trade(reply.trade)
        if reply.trade.paid_at is not None:
            paid["gmt_payment"] = local(reply.trade.paid_at).strftime(TIME_FORMAT)
        return {**paid, "code": "10000", "msg": "Success"}

    async def _query(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        await self._time_out(biz["out_trade_no"])
        reply = await self.bank.query(biz["out_trade_no"])
        unscanned = reply.trade is not None and reply.trade.state is TradeState.NOTPAY
        if reply.reply is Reply.NOT_FOUND or unscanned:
            return _failure("40004", "ACQ.TRADE_NOT_EXIST")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        trade = reply.trade
        assert trade is not None
        answer = {**_trade(trade), "code": "10000", "msg": "Success"}
        answer["trade_status"] = _trade_status(trade)
        if trade.paid_at is not None:
            answer["send_pay_date"] = local(trade.paid_at).strftime(TIME_FORMAT)
        return answer

    async def _cancel(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        before = self.bank.trade(biz["out_trade_no"])
        reply = await self.bank.reverse(biz["out_trade_no"])
        if reply.reply is Reply.RETRY:
            return {**_failure("40004", "ACQ.SYSTEM_ERROR"), "retry_flag": "Y"}
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        paid = before is not None and before.state in (TradeState.SUCCESS, TradeState.REFUND)
        answer = {"code": "10000", "msg": "Success", "out_trade_no": biz["out_trade_no"]}
        if before is not None and before.trade_no:
            answer["trade_no"] = before.trade_no
        return {**answer, "retry_flag": "N", "action": "refund" if paid else "close"}

    async def _refund(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        reply = await self.bank.refund(
            biz["out_trade_no"], biz["out_request_no"], from_yuan(biz["refund_amount"])
        )
        if reply.reply is Reply.NOT_FOUND:
            return _failure("40004", "ACQ.TRADE_NOT_EXIST")
        if reply.reply is Reply.REFUSED:
            sub_code = REFUND_REFUSALS.get(reply.reason, "ACQ.TRADE_NOT_ALLOW_REFUND")
            refused = _failure("40004", sub_code)
            if sub_code == "ACQ.REASON_TRADE_REFUND_FEE_ERR":
                # the live answer names the trade and says nothing was refunded
                refused |= {
                    "out_trade_no": biz["out_trade_no"],
                    "refund_fee": "0.00",
                    "send_back_fee": "0.00",
                }
            return refused
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
            "buyer_logon_id": _trade(reply.trade)["buyer_logon_id"],
            "fund_change": "Y" if moved else "N",
            "refund_fee": to_yuan(reply.trade.refunded_fen),
            "gmt_refund_pay": local(reply.refund.at).strftime(TIME_FORMAT),
            # as the signed live sample: "0.00" unless query_options asks for the detail
            "send_back_fee": "0.00",
        }

    async def _refund_query(self, biz: dict[str, Any]) -> dict[str, Any] | web.Response:
        reply = await self.bank.refund_status(biz["out_trade_no"], biz["out_request_no"])
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        if (
            reply.reply is Reply.NOT_FOUND
            or reply.refund is None
            or reply.trade is None
            or reply.refund.state is not RefundState.SUCCESS
        ):
            return {"code": "10000", "msg": "Success"}  # the documented "no such refund"
        answer = {
            "code": "10000",
            "msg": "Success",
            "trade_no": reply.trade.trade_no,
            "out_trade_no": reply.trade.out_trade_no,
            "out_request_no": reply.refund.out_refund_no,
            "total_amount": to_yuan(reply.trade.amount_fen),
            "refund_amount": to_yuan(reply.refund.amount_fen),
            "refund_status": "REFUND_SUCCESS",
        }
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
        await self._time_out(biz["out_trade_no"])
        trade = self.bank.trade(biz["out_trade_no"])
        if trade is None or (trade.state is TradeState.NOTPAY and not trade.scanned):
            return _failure("40004", "ACQ.TRADE_NOT_EXIST")  # never scanned: no trade yet
        if trade.state in (TradeState.CLOSED, TradeState.REVOKED):
            return _failure("40004", "ACQ.TRADE_STATUS_ERROR")  # only an unpaid trade closes
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

    async def _time_out(self, out_trade_no: str) -> None:
        """Alipay closes an unpaid trade at its timeout_express."""
        trade = self.bank.trade(out_trade_no)
        unpaid = (TradeState.NOTPAY, TradeState.USERPAYING, TradeState.PAYERROR)
        if (
            trade is not None
            and trade.scanned
            and trade.qr_expires_at is not None
            and time.time() >= trade.qr_expires_at
            and trade.state in unpaid
        ):
            await self.bank.close(out_trade_no)

    async def _bill_url(self, biz: dict[str, Any]) -> dict[str, Any]:
        if biz["bill_type"] != "trade":
            return _failure("40004", "isv.invalid-bill-type")
        day = date.fromisoformat(biz["bill_date"])
        trades = self.bank.trades()
        if not any(payments(trades, day)) and not any(refunds(trades, day)):
            return _failure("40004", "isp.bill_not_exist")
        token = secrets.token_urlsafe(12)
        self._bills[token] = day
        return {
            "code": "10000",
            "msg": "Success",
            "bill_download_url": f"{self.base_url}/bills/{token}",
        }

    async def _certificate(self, biz: dict[str, Any]) -> dict[str, Any]:
        """alipay.open.app.alipaycert.download: the certificate file of the SN asked,
        base64 (certificate mode only; the error's sub_code is the sandbox's own)."""
        if not self.keys.alipay_cert_file or biz["alipay_cert_sn"] != self.keys.alipay_cert_sn:
            return _failure("40004", "isv.alipay-cert-not-exist")
        content = base64.b64encode(self.keys.alipay_cert_file).decode()
        return {"code": "10000", "msg": "Success", "alipay_cert_content": content}

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
            return _failure("20000", "isp.unknow-error")
        return None

    def notification(self, trade: Trade, refund: TradeRefund | None) -> Notification:
        """trade_status_sync: the trade's state, and for a refund its out_biz_no and fees."""
        fields = {
            "app_id": self.merchant_id,
            "auth_app_id": self.merchant_id,  # the app itself (no ISV acting for it)
            "seller_id": self.seller_id,
            "buyer_id": _buyer_id(trade),
            "notify_id": secrets.token_hex(16),
            "trade_status": _trade_status(trade),
            "gmt_create": local(trade.created_at).strftime(TIME_FORMAT),
            **{k: str(v) for k, v in _trade(trade).items()},
        }
        if trade.paid_at is not None:
            fields["gmt_payment"] = local(trade.paid_at).strftime(TIME_FORMAT)
        if refund is not None:
            # refund_fee: everything refunded of the trade so far, this refund included
            fields["out_biz_no"] = refund.out_refund_no
            fields["refund_fee"] = to_yuan(_refunded_so_far(trade))
            fields["gmt_refund"] = local(refund.at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            if trade.refunded_fen >= trade.amount_fen:
                fields["trade_status"] = "TRADE_CLOSED"
        params = notification_params(fields, time.time())
        params["sign"] = sign(self.keys.private, signed_text(params))
        body = urlencode(params).encode()
        return Notification(
            body, "application/x-www-form-urlencoded; charset=utf-8", {}, expects="success"
        )

    def _answer(self, name: str, payload: dict[str, Any], *, signed: bool = True) -> web.Response:
        raw = answer_text(payload)
        if signed:
            signature = sign(self.keys.private, raw.encode())
            cert_sn = self.keys.alipay_cert_sn
            named = f'"alipay_cert_sn":"{cert_sn}",' if cert_sn else ""
            text = f'{{"{name}":{raw},{named}"sign":"{signature}"}}'
        else:
            text = f'{{"{name}":{raw}}}'
        return web.Response(text=text, content_type="application/json", charset="utf-8")


def answer_text(payload: dict[str, Any]) -> str:
    """JSON as the gateway writes it: compact, "/" escaped, other text as UTF-8."""
    return orjson.dumps(payload).decode().replace("/", "\\/")


def _trade(trade: Trade) -> dict[str, Any]:
    return {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "total_amount": to_yuan(trade.amount_fen),
        "buyer_logon_id": f"{trade.auth_code[:3]}***",
    }


def _buyer_id(trade: Trade) -> str:
    """The payer's Alipay user id (2088 and 12 digits), the same for a trade every time."""
    digest = hashlib.sha256(f"{trade.out_trade_no}|{trade.auth_code}".encode()).digest()
    return f"2088{int.from_bytes(digest[:8], 'big') % 10**12:012d}"


def _trade_status(trade: Trade) -> str:
    if trade.qr_token and trade.state is TradeState.PAYERROR:
        return "WAIT_BUYER_PAY"  # a failed try at a code the payer scans ends nothing
    return TRADE_STATUS[trade.state]


def _refunded_so_far(trade: Trade) -> int:
    """All refunded of the trade when it was copied (a notification's moment)."""
    return sum(r.amount_fen for r in trade.refunds if r.state is RefundState.SUCCESS)


def _failure(code: str, sub_code: str) -> dict[str, Any]:
    messages = {
        "20000": "Service Currently Unavailable",
        "40002": "Invalid Arguments",
        "40004": "Business Failed",
    }
    return {
        "code": code,
        "msg": messages.get(code, "Failed"),
        "sub_code": sub_code,
        "sub_msg": SUB_MESSAGES.get(sub_code, "业务处理失败"),
    }
