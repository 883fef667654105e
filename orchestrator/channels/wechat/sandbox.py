"""The WeChat Pay v3 sandbox gateway: codepay, Native and close, query, reverse, refund
and refund query, trade bill, platform certificates; for a merchant and, on the
/v3/pay/partner/ paths, for a partner acting for its sub-merchant. It checks the
merchant's request signature like the real gateway, signs every answer with the platform
key, and answers in the shapes of the published samples (sandbox_answers.py)."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
import uuid
from datetime import date, datetime
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from orchestrator.channels.wechat.accounts import DIRECT_TRANSACTIONS, PARTNER_TRANSACTIONS, Account
from orchestrator.channels.wechat.adapter import (
    MAX_SKEW_S,
    SCHEMA,
    SIGNATURE_TYPE,
    answer_message,
    parse_authorization,
    request_message,
)
from orchestrator.channels.wechat.notify import notification_body
from orchestrator.channels.wechat.sandbox_answers import (
    param_error,
    refund_answer,
    refund_notice,
    reverse_answer,
    trade_answer,
)
from orchestrator.channels.wechat.sandbox_bill import wechat_trade_bill
from orchestrator.channels.wechat.sandbox_keys import WeChatPlatformKeys
from orchestrator.providers.signing import sign, verify
from orchestrator.sandbox.bank import BankReply, Reply, SandboxBank, Trade, TradeRefund, TradeState
from orchestrator.sandbox.common import Gateway, Notification

OPTIONAL_IDS = {"sub_appid"}  # 选填: when sent, it must be the sub-merchant's
DECLINE_CODES = {"AUTH_CODE_USED": "AUTH_CODE_INVALID"}
REFUND_REFUSALS = {
    "MERCHANT_BALANCE_LOW": (403, "NOT_ENOUGH", "余额不足"),
    "REFUND_AMOUNT_EXCEEDED": (400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"),
    "TRADE_NOT_PAID": (404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付"),
}


class WeChatGateway(Gateway[WeChatPlatformKeys]):
    name = "WECHAT"

    def __init__(
        self,
        bank: SandboxBank,
        keys: WeChatPlatformKeys,
        merchant_id: str,
        appid: str,
        *,
        sub_mchid: str = "",
        sub_appid: str = "",
    ) -> None:
        super().__init__(bank, keys, merchant_id)
        self.appid = appid
        self.sub_mchid, self.sub_appid = sub_mchid, sub_appid
        self._bill_tokens: dict[str, date] = {}
        routes = [
            web.post("/v3/refund/domestic/refunds", self._refund),
            web.get("/v3/refund/domestic/refunds/{no}", self._refund_query),
            web.get("/v3/bill/tradebill", self._tradebill),
            web.get("/v3/billdownload/file", self._download),
            web.get("/v3/certificates", self._certificates),
            web.post("/_sandbox/certificates/rotate", self._rotate),
        ]
        for prefix, partner in ((DIRECT_TRANSACTIONS, False), (PARTNER_TRANSACTIONS, True)):
            routes += [
                web.post(f"{prefix}/codepay", partial(self._codepay, partner)),
                web.get(f"{prefix}/out-trade-no/{{no}}", partial(self._query, partner)),
                web.post(f"{prefix}/out-trade-no/{{no}}/reverse", partial(self._reverse, partner)),
                web.post(f"{prefix}/native", partial(self._native, partner)),
                web.post(f"{prefix}/out-trade-no/{{no}}/close", partial(self._close, partner)),
            ]
        self.app.add_routes(routes)

    @property
    def direct(self) -> Account:
        return Account(self.merchant_id, self.appid)

    @property
    def partner(self) -> Account:
        """What the partner paths answer for: the configured sub-merchant."""
        return Account(self.merchant_id, self.appid, self.sub_mchid, self.sub_appid)

    @property
    def account(self) -> Account:
        """Whom the notifications name: the sub-merchant once one is configured."""
        return self.partner if self.sub_mchid else self.direct

    def _account(self, partner: bool) -> Account:
        return self.partner if partner else self.direct

    # ---- payments ---------------------------------------------------------------------

    async def _codepay(self, partner: bool, request: web.Request) -> web.Response:
        account = self._account(partner)
        body = await self._checked(request, account)
        if isinstance(body, web.Response):
            return body
        try:
            out_trade_no = body["out_trade_no"]
            auth_code = body["payer"]["auth_code"]
            total = int(body["amount"]["total"])
            store = body["scene_info"]["store_info"]["out_id"]
        except (KeyError, TypeError, ValueError):
            return self._error(400, param_error("/scene_info/store_info/out_id", "", "缺少参数"))
        if len(out_trade_no) > 32 or not store or total <= 0:
            return self._fail(400, "PARAM_ERROR", "out_trade_no, store id or amount invalid")
        # A code payment (付款码支付) sends no notification: only queries tell.
        reply = await self.bank.pay(out_trade_no, auth_code, total, store, notify=False)
        if reply.reply is Reply.ALREADY:
            return self._fail(403, "ORDERPAID", "订单已支付")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        told = reply.told or reply.trade.state
        if told is TradeState.USERPAYING:
            return self._answer(202, {"trade_state": "USERPAYING"})
        if told is TradeState.PAYERROR:
            return self._fail(403, DECLINE_CODES.get(reply.trade.reason, reply.trade.reason),
                              "支付失败")  # fmt: skip
        if told in (TradeState.CLOSED, TradeState.REVOKED):
            return self._fail(400, "ORDER_CLOSED", "订单已关闭")
        return self._answer(200, trade_answer(reply.trade, account))

    async def _native(self, partner: bool, request: web.Request) -> web.Response:
        """Native payment: a code_url the payer scans (here a URL on this sandbox)."""
        account = self._account(partner)
        body = await self._checked(request, account)
        if isinstance(body, web.Response):
            return body
        try:
            out_trade_no = body["out_trade_no"]
            total = int(body["amount"]["total"])
            expires = rfc3339_seconds(body["time_expire"])
            notify_url = body["notify_url"]
        except (KeyError, TypeError, ValueError):
            return self._fail(400, "PARAM_ERROR", "missing or malformed field")
        if len(out_trade_no) > 32 or total <= 0 or not notify_url:
            return self._fail(400, "PARAM_ERROR", "out_trade_no, amount or notify_url invalid")
        refused = _scene_info_refused(body.get("scene_info"))
        if refused is not None:
            return self._error(400, refused)
        reply = await self.bank.create_qr(out_trade_no, total, "", expires)
        if reply.reply is Reply.REFUSED:
            return self._fail(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return self._answer(200, {"code_url": self.code_url(reply.trade)})

    async def _close(self, partner: bool, request: web.Request) -> web.Response:
        account = self._account(partner)
        body = await self._checked(request, account, ids=account.merchant_ids())
        if isinstance(body, web.Response):
            return body
        no = request.match_info["no"]
        if self.bank.trade(no) is None:
            return self._fail(404, "ORDER_NOT_EXIST", "订单不存在")
        reply = await self.bank.close(no)
        if reply.reply is Reply.ALREADY:
            return self._fail(400, "ORDERPAID", "订单已支付")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        return self._answer(204, {})

    async def _query(self, partner: bool, request: web.Request) -> web.Response:
        account = self._account(partner)
        checked = await self._checked(request, account, ids={})
        if isinstance(checked, web.Response):
            return checked
        if dict(request.query) != dict(parse_query(account.query())):
            return self._fail(400, "PARAM_ERROR", "mchid does not match")
        reply = await self.bank.query(request.match_info["no"])
        if reply.reply is Reply.NOT_FOUND:
            return self._fail(404, "ORDER_NOT_EXIST", "订单不存在")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        assert reply.trade is not None
        return self._answer(200, trade_answer(reply.trade, account))

    async def _reverse(self, partner: bool, request: web.Request) -> web.Response:
        """撤销: 200 naming the trade; SYSTEM_ERROR asks for another try; a number WeChat
        has no trade for is ORDER_NOT_EXIST, and nothing is recorded."""
        account = self._account(partner)
        body = await self._checked(request, account)
        if isinstance(body, web.Response):
            return body
        no = request.match_info["no"]
        if self.bank.trade(no) is None:
            return self._fail(404, "ORDER_NOT_EXIST", "订单不存在")
        reply = await self.bank.reverse(no)
        if reply.reply is Reply.RETRY:
            return self._fail(500, "SYSTEM_ERROR", "系统错误，请使用相同参数稍后重新调用")
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        return self._answer(200, reverse_answer(no, account))

    # ---- refunds and bills ------------------------------------------------------------

    async def _refund(self, request: web.Request) -> web.Response:
        checked = await self._checked(request, self.direct, ids={})
        if isinstance(checked, web.Response):
            return checked
        body = checked
        if "sub_mchid" in body and body["sub_mchid"] != self.sub_mchid:
            return self._fail(400, "PARAM_ERROR", "sub_mchid does not match")
        try:
            amount = int(body["amount"]["refund"])
            reply = await self.bank.refund(body["out_trade_no"], body["out_refund_no"], amount)
        except (KeyError, TypeError, ValueError):
            return self._fail(400, "PARAM_ERROR", "missing or malformed field")
        if reply.reply is Reply.NOT_FOUND:
            return self._fail(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if reply.reply is Reply.REFUSED:
            status, code, message = REFUND_REFUSALS.get(
                reply.reason, (400, "INVALID_REQUEST", reply.reason)
            )
            return self._fail(status, code, message)
        unusual = self._unusual(reply)
        if unusual is not None:
            return unusual
        # A resend of the same out_refund_no is answered with that refund (只退一笔).
        assert reply.refund is not None and reply.trade is not None
        return self._answer(200, refund_answer(reply.trade, reply.refund))

    async def _refund_query(self, request: web.Request) -> web.Response:
        checked = await self._checked(request, self.direct, ids={})
        if isinstance(checked, web.Response):
            return checked
        if request.query.get("sub_mchid", self.sub_mchid) != self.sub_mchid:
            return self._fail(400, "PARAM_ERROR", "sub_mchid does not match")
        if "refund" in self.bank.faults:
            return web.Response(status=503, text="service unavailable")
        found = self.bank.refund_by_no(request.match_info["no"])
        if found is None:
            return self._fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._answer(200, refund_answer(*found))

    async def _tradebill(self, request: web.Request) -> web.Response:
        checked = await self._checked(request, self.direct, ids={})
        if isinstance(checked, web.Response):
            return checked
        try:
            day = date.fromisoformat(request.query.get("bill_date", ""))
        except ValueError:
            return self._fail(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
        content = self._bill(day, request.query.get("sub_mchid", ""))
        if not content:
            return self._fail(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        token = secrets.token_urlsafe(12)
        self._bill_tokens[token] = day
        return self._answer(
            200,
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
                "download_url": f"{self.base_url}/v3/billdownload/file?token={token}",
            },
        )

    async def _download(self, request: web.Request) -> web.Response:
        checked = await self._checked(request, self.direct, ids={})
        if isinstance(checked, web.Response):
            return checked
        day = self._bill_tokens.get(request.query.get("token", ""))
        if day is None:
            return self._fail(404, "RESOURCE_NOT_EXISTS", "unknown bill token")
        content = self._bill(day, "")
        return web.Response(body=content, content_type="text/csv", charset="utf-8")

    def _bill(self, day: date, sub_mchid: str) -> bytes:
        column = self.sub_mchid or "0"
        if sub_mchid and sub_mchid != column:
            return b""
        return wechat_trade_bill(self.bank.trades(), day, self.appid, self.merchant_id, column)

    async def _certificates(self, request: web.Request) -> web.Response:
        checked = await self._checked(request, self.direct, ids={})
        if isinstance(checked, web.Response):
            return checked
        return self._answer(200, self.keys.certificates_answer())

    async def _rotate(self, request: web.Request) -> web.Response:
        """Admin: a new platform certificate, listed beside the old and signing from now."""
        return web.json_response({"serial_no": self.keys.rotate()})

    # ---- notifications --------------------------------------------------------------

    def notification(self, trade: Trade, refund: TradeRefund | None) -> Notification:
        """支付成功 / 退款成功: the resource sealed under the APIv3 key, the body signed
        like an answer."""
        if refund is None:
            event, resource = "TRANSACTION.SUCCESS", trade_answer(trade, self.account)
        else:
            event, resource = "REFUND.SUCCESS", refund_notice(trade, refund, self.account)
        body = notification_body(
            self.keys.apiv3_key, event, resource, str(uuid.uuid4()), secrets.token_hex(6)
        )
        headers = self._signed_headers(body)
        del headers["Request-ID"]
        return Notification(body, "application/json", headers)

    def _signed_headers(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        return {
            "Request-ID": str(uuid.uuid4()),
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign(self.keys.private, answer_message(timestamp, nonce, body)),
            "Wechatpay-Serial": self.keys.own_serial,
            SIGNATURE_TYPE: SCHEMA,
        }

    # ---- protocol -------------------------------------------------------------------

    async def _checked(
        self, request: web.Request, account: Account, ids: dict[str, str] | None = None
    ) -> dict[str, Any] | web.Response:
        """The request's JSON body once its signature verifies and it names `ids` (the
        account's appid and mchid, or the partner's ids, unless told otherwise); else the
        gateway's 401 or 400."""
        body = await request.read()
        fields = parse_authorization(request.headers.get("Authorization", ""))
        timestamp = fields.get("timestamp", "")
        if fields.get("mchid") != self.merchant_id or fields.get("serial_no") != (
            self.keys.peer_serial
        ):
            return self._fail(401, "SIGN_ERROR", "unknown merchant or certificate serial")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            return self._fail(401, "SIGN_ERROR", "timestamp missing or expired")
        message = request_message(
            request.method, request.path_qs, timestamp, fields.get("nonce_str", ""), body
        )
        if not verify(self.keys.peer_public, message, fields.get("signature", "")):
            return self._fail(401, "SIGN_ERROR", "签名错误")
        try:
            parsed = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return self._fail(400, "PARAM_ERROR", "body is not JSON")
        if not isinstance(parsed, dict):
            return self._fail(400, "PARAM_ERROR", "not an object")
        expected = account.ids() if ids is None else ids
        if any(
            parsed.get(name) != value
            for name, value in expected.items()
            if name in parsed or name not in OPTIONAL_IDS
        ):
            return self._fail(400, "PARAM_ERROR", f"{', '.join(expected)} do not match")
        return parsed

    def _unusual(self, reply: BankReply) -> web.Response | None:
        if reply.reply in (Reply.UNAVAILABLE, Reply.PROXY_ERROR):
            return web.Response(status=503, text="service unavailable")  # unsigned, like a proxy
        if reply.reply is Reply.SYSTEM_ERROR:
            return self._fail(500, "SYSTEM_ERROR", "系统错误")
        return None

    def _fail(self, status: int, code: str, message: str) -> web.Response:
        return self._error(status, {"code": code, "message": message})

    def _error(self, status: int, payload: dict[str, Any]) -> web.Response:
        return self._answer(status, payload)

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


def parse_query(text: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (part.partition("=") for part in text.split("&") if part)]


def _scene_info_refused(scene: object) -> dict[str, Any] | None:
    """Native's scene_info is optional; given, it needs payer_client_ip (an IPv4 or IPv6
    address) and, if it has store_info, the store's id."""
    if scene is None:
        return None
    if not isinstance(scene, dict):
        return param_error("/scene_info", scene, "必须是对象")
    ip = scene.get("payer_client_ip")
    try:
        ipaddress.ip_address(str(ip))
    except ValueError:
        return param_error("/scene_info/payer_client_ip", ip, "缺少必填参数或格式错误")
    store = scene.get("store_info")
    if store is not None and not (isinstance(store, dict) and store.get("id")):
        return param_error("/scene_info/store_info/id", store, "缺少必填参数")
    return None
