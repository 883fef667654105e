"""The WeChat Pay v3 sandbox gateway: codepay, query, reverse, refund, trade bill.
It checks the merchant's request signature like the real gateway and signs every
answer with the platform key."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import date, datetime
from typing import Any

import orjson
from aiohttp import web

from orchestrator.channels.wechat.adapter import (
    MAX_SKEW_S,
    answer_message,
    parse_authorization,
    request_message,
)
from orchestrator.channels.wechat.notify import notification_body
from orchestrator.channels.wechat.sandbox_bill import wechat_trade_bill
from orchestrator.channels.wechat.sandbox_keys import WeChatPlatformKeys
from orchestrator.providers.signing import sign, verify
from orchestrator.sandbox.bank import (
    BankReply,
    Refund,
    Reply,
    SandboxBank,
    Trade,
    TradeState,
)
from orchestrator.sandbox.common import Gateway, Notification

DECLINE_CODES = {"AUTH_CODE_USED": "AUTH_CODE_INVALID"}
REFUND_REFUSALS = {
    "MERCHANT_BALANCE_LOW": (403, "NOT_ENOUGH", "商户可用退款余额不足"),
    "REFUND_AMOUNT_EXCEEDED": (400, "PARAM_ERROR", "退款金额超过可退金额"),
    "TRADE_NOT_PAID": (400, "PARAM_ERROR", "订单未支付"),
}


class WeChatGateway(Gateway[WeChatPlatformKeys]):
    name = "WECHAT"

    def __init__(
        self, bank: SandboxBank, keys: WeChatPlatformKeys, merchant_id: str, appid: str
    ) -> None:
        super().__init__(bank, keys, merchant_id)
        self.appid = appid
        self._bill_tokens: dict[str, date] = {}
        self.app.add_routes(
            [
                web.post("/v3/pay/transactions/codepay", self._codepay),
                web.get("/v3/pay/transactions/out-trade-no/{no}", self._query),
                web.post("/v3/pay/transactions/out-trade-no/{no}/reverse", self._reverse),
                web.post("/v3/pay/transactions/native", self._native),
                web.post("/v3/pay/transactions/out-trade-no/{no}/close", self._close),
                web.post("/v3/refund/domestic/refunds", self._refund),
                web.get("/v3/refund/domestic/refunds/{no}", self._refund_query),
                web.get("/v3/bill/tradebill", self._tradebill),
                web.get("/v3/billdownload/file", self._download),
                web.get("/v3/certificates", self._certificates),
                web.post("/_sandbox/certificates/rotate", self._rotate),
            ]
        )

    # ---- routes ---------------------------------------------------------------------

    async def _codepay(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        if body.get("mchid") != self.merchant_id or body.get("appid") != self.appid:
            return self._error(400, "PARAM_ERROR", "mchid or appid does not match")
        try:
            out_trade_no = body["out_trade_no"]
            auth_code = body["payer"]["auth_code"]
            total = int(body["amount"]["total"])
            store = body["scene_info"]["store_info"]["out_id"]
        except (KeyError, TypeError, ValueError):
            return self._error(400, "PARAM_ERROR", "missing or malformed field")
        if len(out_trade_no) > 32 or not store or total <= 0:
            return self._error(400, "PARAM_ERROR", "out_trade_no, store id or amount invalid")
        # A code payment (付款码支付) sends no notification: only queries tell.
        reply = await self.bank.pay(out_trade_no, auth_code, total, store, notify=False)
        if reply.reply is Reply.ALREADY:
            return self._error(403, "ORDERPAID", "订单已支付")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        told = reply.told or reply.trade.state
        if told is TradeState.USERPAYING:
            return self._answer(202, {"code": "USERPAYING", "message": "需要用户输入支付密码"})
        if told is TradeState.PAYERROR:
            code = DECLINE_CODES.get(reply.trade.reason, reply.trade.reason)
            return self._error(403, code, "支付失败")
        if told in (TradeState.CLOSED, TradeState.REVOKED):
            return self._error(400, "ORDER_CLOSED", "订单已关闭")
        return self._answer(200, self._trade(reply.trade))

    async def _native(self, request: web.Request) -> web.Response:
        """Native payment: a code_url the payer scans (here a URL on this sandbox)."""
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        if body.get("mchid") != self.merchant_id or body.get("appid") != self.appid:
            return self._error(400, "PARAM_ERROR", "mchid or appid does not match")
        try:
            out_trade_no = body["out_trade_no"]
            total = int(body["amount"]["total"])
            expires = rfc3339_seconds(body["time_expire"])
            notify_url = body["notify_url"]
        except (KeyError, TypeError, ValueError):
            return self._error(400, "PARAM_ERROR", "missing or malformed field")
        if len(out_trade_no) > 32 or total <= 0 or not notify_url:
            return self._error(400, "PARAM_ERROR", "out_trade_no, amount or notify_url invalid")
        reply = await self.bank.create_qr(out_trade_no, total, "", expires)
        if reply.reply is Reply.REFUSED:
            return self._error(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return self._answer(200, {"code_url": self.code_url(reply.trade)})

    async def _close(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        if body.get("mchid") != self.merchant_id:
            return self._error(400, "PARAM_ERROR", "mchid does not match")
        reply = await self.bank.close(request.match_info["no"])
        if reply.reply is Reply.ALREADY:
            return self._error(400, "ORDERPAID", "订单已支付")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        return self._answer(204, {})

    async def _query(self, request: web.Request) -> web.Response:
        checked = await self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        if request.query.get("mchid") != self.merchant_id:
            return self._error(400, "PARAM_ERROR", "mchid does not match")
        reply = await self.bank.query(request.match_info["no"])
        if reply.reply is Reply.NOT_FOUND:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return self._answer(200, self._trade(reply.trade))

    async def _reverse(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        reply = await self.bank.reverse(request.match_info["no"])
        if reply.reply is Reply.RETRY:
            return self._answer(200, {"recall": "Y"})
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        return self._answer(200, {"recall": "N"})

    async def _refund(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        try:
            amount = int(body["amount"]["refund"])
            reply = await self.bank.refund(body["out_trade_no"], body["out_refund_no"], amount)
        except (KeyError, TypeError, ValueError):
            return self._error(400, "PARAM_ERROR", "missing or malformed field")
        if reply.reply is Reply.NOT_FOUND:
            return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if reply.reply is Reply.REFUSED:
            status, code, message = REFUND_REFUSALS.get(
                reply.reason, (400, "INVALID_REQUEST", reply.reason)
            )
            return self._error(status, code, message)
        if reply.reply is Reply.ALREADY:
            return self._error(400, "INVALID_REQUEST", "退款单已存在，请勿重复提交")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.refund is not None and reply.trade is not None
        return self._answer(200, _refund(reply.trade, reply.refund))

    async def _refund_query(self, request: web.Request) -> web.Response:
        checked = await self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        if "refund" in self.bank.faults:
            return web.Response(status=503, text="service unavailable")
        found = self.bank.refund_by_no(request.match_info["no"])
        if found is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._answer(200, _refund(*found))

    async def _tradebill(self, request: web.Request) -> web.Response:
        checked = await self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        try:
            day = date.fromisoformat(request.query.get("bill_date", ""))
        except ValueError:
            return self._error(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
        token = secrets.token_urlsafe(12)
        self._bill_tokens[token] = day
        content = wechat_trade_bill(self.bank.trades(), day, self.appid, self.merchant_id)
        return self._answer(
            200,
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
                "download_url": f"{self.base_url}/v3/billdownload/file?token={token}",
            },
        )

    async def _download(self, request: web.Request) -> web.Response:
        checked = await self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        day = self._bill_tokens.get(request.query.get("token", ""))
        if day is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "unknown bill token")
        content = wechat_trade_bill(self.bank.trades(), day, self.appid, self.merchant_id)
        return web.Response(body=content, content_type="text/csv", charset="utf-8")

    async def _certificates(self, request: web.Request) -> web.Response:
        checked = await self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        return self._answer(200, self.keys.certificates_answer())

    async def _rotate(self, request: web.Request) -> web.Response:
        """Admin: a new platform certificate, listed beside the old and signing from now."""
        return web.json_response({"serial_no": self.keys.rotate()})

    # ---- notifications --------------------------------------------------------------

    def notification(self, trade: Trade, refund: Refund | None) -> Notification:
        """支付成功 / 退款成功: the resource sealed under the APIv3 key, the body signed
        like an answer."""
        if refund is None:
            event, resource = "TRANSACTION.SUCCESS", self._trade(trade)
        else:
            event = "REFUND.SUCCESS"
            resource = {"mchid": self.merchant_id, **_refund(trade, refund)}
            resource["refund_status"] = resource.pop("status")
        body = notification_body(
            self.keys.apiv3_key, event, resource, secrets.token_hex(16), secrets.token_hex(6)
        )
        return Notification(body, "application/json", self._signed_headers(body))

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign(self.keys.private, answer_message(timestamp, nonce, body)),
            "Wechatpay-Serial": self.keys.own_serial,
        }

    # ---- protocol -------------------------------------------------------------------

    async def _checked(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's JSON body once its signature verifies; else the gateway's 401."""
        body = await request.read()
        fields = parse_authorization(request.headers.get("Authorization", ""))
        timestamp = fields.get("timestamp", "")
        if fields.get("mchid") != self.merchant_id or fields.get("serial_no") != (
            self.keys.peer_serial
        ):
            return self._error(401, "SIGN_ERROR", "unknown merchant or certificate serial")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            return self._error(401, "SIGN_ERROR", "timestamp missing or expired")
        message = request_message(
            request.method, request.path_qs, timestamp, fields.get("nonce_str", ""), body
        )
        if not verify(self.keys.peer_public, message, fields.get("signature", "")):
            return self._error(401, "SIGN_ERROR", "签名错误")
        if not body:
            return {}
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._error(400, "PARAM_ERROR", "body is not JSON")
        return (
            parsed if isinstance(parsed, dict) else self._error(400, "PARAM_ERROR", "not an object")
        )

    def _unusual(self, reply: BankReply) -> web.Response | None:
        if reply.reply in (Reply.UNAVAILABLE, Reply.PROXY_ERROR):
            return web.Response(status=503, text="service unavailable")  # unsigned, like a proxy
        if reply.reply is Reply.SYSTEM_ERROR:
            return self._error(500, "SYSTEM_ERROR", "系统错误")
        return None

    def _trade(self, trade: Trade) -> dict[str, Any]:
        record: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.merchant_id,
            "out_trade_no": trade.out_trade_no,
            "transaction_id": trade.trade_no,
            "trade_type": "NATIVE" if trade.qr_token else "MICROPAY",
            "trade_state": trade.state.value,
            "trade_state_desc": trade.reason or trade.state.value,
            "bank_type": "OTHERS",
            "amount": {"total": trade.amount_fen, "currency": "CNY"},
            "scene_info": {"device_id": trade.store_id},
        }
        if trade.paid_at is not None:
            record["success_time"] = time.strftime(
                "%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(trade.paid_at + 8 * 3600)
            )
        return record

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return self._answer(status, {"code": code, "message": message})

    def _answer(self, status: int, payload: dict[str, Any]) -> web.Response:
        body = orjson.dumps(payload) if status != 204 else b""
        return web.Response(
            status=status,
            body=body,
            content_type="application/json",
            headers=self._signed_headers(body),
        )


def rfc3339_seconds(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time such as 2026-11-29T18:00:00+08:00."""
    return datetime.fromisoformat(text).timestamp()


def _refund(trade: Trade, refund: Refund) -> dict[str, Any]:
    return {
        "refund_id": refund.refund_no,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "status": refund.state.value,
        "amount": {"refund": refund.amount_fen, "total": trade.amount_fen, "currency": "CNY"},
    }
