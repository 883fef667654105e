"""The UnionPay acquirer sandbox gateway (ACP 5.1.0): sale, 申码, query, reversal, void,
refund and the settlement file. It checks the merchant's signature and answers as the
public samples of the real gateway do (tests/fixtures/wire/unionpay): raw `k=v&...`
text, nothing URL-encoded, signed with its signPubKeyCert, no certId, and only fields
the real answers carry (shapes.py). A reversal that must get "no answer" (8888) is
simply left hanging. A 申码 code ends at its payTimeout: the ledger closes it then."""

from __future__ import annotations

import asyncio
import base64
import re
import time
import zlib
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.channels.unionpay.adapter import SETTLEMENT_DAY_SHIFT, settlement_day
from orchestrator.channels.unionpay.outcomes import (
    APPLY_QR,
    QUERY_TXN,
    REFUND,
    REVERSAL,
    SALE,
    SETTLEMENT_FILE,
    VOID,
)
from orchestrator.channels.unionpay.sandbox_bill import unionpay_settlement
from orchestrator.channels.unionpay.sandbox_keys import UnionPayPlatformKeys
from orchestrator.channels.unionpay.shapes import answer_fields
from orchestrator.channels.unionpay.wire import digest, render_answer
from orchestrator.providers.signing import sign, verify
from orchestrator.sandbox.bank import (
    RefundState,
    Reply,
    SandboxBank,
    Trade,
    TradeRefund,
    TradeState,
)
from orchestrator.sandbox.bills import BEIJING
from orchestrator.sandbox.common import Gateway, Notification

# ACP's own response codes (the acquirer's, not ISO-8583 POS codes).
MESSAGES = {
    "00": "成功[0000000]",
    "01": "交易失败",
    "03": "交易通讯超时，请发起查询交易",
    "05": "交易已受理，请稍后查询交易结果",
    "10": "报文格式错误",
    "11": "验证签名失败",
    "12": "重复交易",
    "31": "商户状态不正确",
    "33": "交易金额超限",
    "34": "查无此交易",
    "35": "原交易不存在或状态不正确",
    "61": "输入的卡号无效，请确认后输入",
    "64": "卡上的余额不足",
}
DECLINE_CODES = {"NOTENOUGH": "64", "AUTHCODEEXPIRE": "61", "AUTH_CODE_USED": "61"}
REFUND_REFUSALS = {
    "MERCHANT_BALANCE_LOW": "31",
    "REFUND_AMOUNT_EXCEEDED": "33",
    "TRADE_NOT_PAID": "35",
}
ORDER_ID = re.compile(r"^[A-Za-z0-9]{8,40}$")
ANSWERED = frozenset({"00", "05", "12", "31", "33", "35", "61", "64"})  # a transaction's own


class UnionPayGateway(Gateway[UnionPayPlatformKeys]):
    name = "UNIONPAY"

    def __init__(
        self,
        bank: SandboxBank,
        keys: UnionPayPlatformKeys,
        merchant_id: str,
        bill_day_shift: timedelta = SETTLEMENT_DAY_SHIFT,
    ) -> None:
        super().__init__(bank, keys, merchant_id)
        self._bill_day_shift = bill_day_shift
        self._txn_times: dict[str, str] = {}  # orderId -> txnTime of the sale, void, refund
        self._kinds: dict[str, tuple[str, str]] = {}  # orderId -> its txnType, txnSubType
        self._pay_timeouts: dict[str, float] = {}  # 申码 orderId -> its payTimeout
        self.app.add_routes(
            [
                web.post("/gateway/api/backTransReq.do", self._transact),
                web.post("/gateway/api/queryTrans.do", self._query),
                web.post("/gateway/api/fileTransReq.do", self._file),
            ]
        )

    async def _transact(self, request: web.Request) -> web.Response:
        fields = await self._checked(request)
        if isinstance(fields, web.Response):
            return fields
        try:
            kind = fields["txnType"]
            if kind in (SALE, VOID, REFUND):
                if not ORDER_ID.match(fields["orderId"]) or not fields.get("backUrl"):
                    return self._answer(fields, "10")
                if not fields.get("txnTime"):
                    return self._answer(fields, "10")
                self._txn_times.setdefault(fields["orderId"], fields["txnTime"])
                self._kinds.setdefault(fields["orderId"], (kind, fields.get("txnSubType", "")))
            if kind == SALE and fields.get("txnSubType") == APPLY_QR:
                return await self._apply_qr(fields)
            if kind == SALE:
                return await self._sale(fields)
            if kind == REVERSAL:
                return await self._reversal(fields)
            if kind in (VOID, REFUND):
                return await self._refund(fields, "void" if kind == VOID else "refund")
        except (KeyError, ValueError):
            return self._answer(fields, "10")
        return self._answer(fields, "10")

    async def _sale(self, fields: dict[str, str]) -> web.Response:
        amount = int(fields["txnAmt"])
        reply = await self.bank.pay(
            fields["orderId"], fields["qrNo"], amount, fields.get("reqReserved", "")
        )
        if reply.reply in (Reply.UNAVAILABLE, Reply.PROXY_ERROR):
            return web.Response(status=503, text="service unavailable")
        if reply.reply is Reply.SYSTEM_ERROR:
            return self._answer(fields, "03")
        if reply.reply is Reply.ALREADY:
            return self._answer(fields, "12")
        assert reply.trade is not None
        code = _code(reply.told or reply.trade.state, reply.trade)
        return self._answer(fields, code, reply.trade, orderId=reply.trade.out_trade_no)

    async def _apply_qr(self, fields: dict[str, str]) -> web.Response:
        """申码: a code for the payer to scan, valid until payTimeout."""
        expires = datetime.strptime(fields["payTimeout"], "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
        reply = await self.bank.create_qr(
            fields["orderId"], int(fields["txnAmt"]), fields.get("reqReserved", ""),
            expires.timestamp(),
        )  # fmt: skip
        self._pay_timeouts.setdefault(fields["orderId"], expires.timestamp())
        if reply.reply is Reply.UNAVAILABLE:
            return web.Response(status=503, text="service unavailable")
        if reply.reply is Reply.REFUSED:
            return self._answer(fields, "12")
        assert reply.trade is not None
        return self._answer(
            fields, "00", reply.trade, orderId=reply.trade.out_trade_no,
            qrCode=self.code_url(reply.trade),
        )  # fmt: skip

    async def _reversal(self, fields: dict[str, str]) -> web.Response:
        """The reversal (冲正) names the sale by its orderId and original txnTime."""
        if not self._is_original(fields):
            return self._answer(fields, "34")
        if fields["orderId"] in self._pay_timeouts:
            return self._answer(fields, "35")  # 冲正 is for payer-presented sales only
        reply = await self.bank.reverse(fields["orderId"])
        if reply.reply is Reply.RETRY:
            # The host does not answer this reversal; the terminal sends it again.
            await asyncio.sleep(self.bank.timing.hang_s * self.bank.timing.time_scale)
            return self._answer(fields, "03")
        if reply.reply is Reply.UNAVAILABLE:
            return web.Response(status=503, text="service unavailable")
        return self._answer(fields, "00", reply.trade, orderId=fields["orderId"])

    async def _refund(self, fields: dict[str, str], kind: str) -> web.Response:
        """A void or refund names the sale by its queryId (origQryId)."""
        original = self.bank.trade_by_no(fields.get("origQryId", ""))
        amount = int(fields["txnAmt"])
        if original is None:
            return self._answer(fields, "35")
        if kind == "void" and not _voidable(original, amount):
            return self._answer(fields, "35")
        reply = await self.bank.refund(original.out_trade_no, fields["orderId"], amount, kind)
        if reply.reply is Reply.UNAVAILABLE:
            return web.Response(status=503, text="service unavailable")
        if reply.reply is Reply.ALREADY:
            return self._answer(fields, "12")
        if reply.reply is Reply.REFUSED:
            return self._answer(fields, REFUND_REFUSALS.get(reply.reason, "35"))
        if reply.reply is not Reply.OK or reply.refund is None:
            return self._answer(fields, "35")
        return self._answer(
            fields, "00", queryId=reply.refund.refund_no, txnAmt=str(reply.refund.amount_fen),
            origQryId=original.trade_no,
        )  # fmt: skip

    async def _query(self, request: web.Request) -> web.Response:
        """A query answers with the queried transaction's own txnType, txnSubType and
        txnTime, its state in origRespCode, as the real answers do."""
        fields = await self._checked(request)
        if isinstance(fields, web.Response):
            return fields
        if fields.get("txnType") != QUERY_TXN or "orderId" not in fields:
            return self._answer(fields, "10")
        if not self._is_original(fields):
            return self._answer(fields, "34")
        order_id = fields["orderId"]
        kind, sub = self._kinds.get(order_id, (SALE, ""))
        original = {**fields, "txnType": kind, "txnSubType": sub, "answer": "query"}
        refunded = self.bank.refund_by_no(order_id)
        if refunded is not None and "refund" in self.bank.faults:
            return web.Response(status=503, text="service unavailable")
        if refunded is not None:
            _, refund = refunded
            done = "00" if refund.state is RefundState.SUCCESS else "05"
            return self._answer(
                original, "00", queryId=refund.refund_no, txnAmt=str(refund.amount_fen),
                origRespCode=done, origRespMsg=MESSAGES[done],
            )  # fmt: skip
        await self._end_expired_code(order_id)
        reply = await self.bank.query(order_id)
        if reply.reply is Reply.NOT_FOUND:
            return self._answer(fields, "34")
        if reply.reply is Reply.UNAVAILABLE:
            return web.Response(status=503, text="service unavailable")
        assert reply.trade is not None
        code = _code(reply.trade.state, reply.trade)
        settled = {"settleAmt": str(reply.trade.amount_fen)} if code == "00" else {}
        return self._answer(
            original, "00", reply.trade, origRespCode=code,
            origRespMsg=MESSAGES.get(code, "失败"), **settled,
        )  # fmt: skip

    async def _end_expired_code(self, order_id: str) -> None:
        """A 申码 code past its payTimeout can no longer be paid: the host ends it."""
        pay_timeout = self._pay_timeouts.get(order_id)
        if pay_timeout is not None and time.time() >= pay_timeout:
            await self.bank.close(order_id)

    def _is_original(self, fields: dict[str, str]) -> bool:
        """A query or reversal names a transaction by orderId and its txnTime: the
        wrong time finds nothing, as at a real host."""
        sent = self._txn_times.get(fields.get("orderId", ""))
        return sent is None or sent == fields.get("txnTime")

    async def _file(self, request: web.Request) -> web.Response:
        fields = await self._checked(request)
        if isinstance(fields, web.Response):
            return fields
        if fields.get("txnType") != SETTLEMENT_FILE:
            return self._answer(fields, "10")
        try:
            day = _settle_day(fields["settleDate"])
        except (KeyError, ValueError):
            return self._answer(fields, "10")
        content = unionpay_settlement(
            self.bank.trades(), day, self.merchant_id, self._bill_day_shift
        )
        return self._answer(
            fields,
            "00",
            fileContent=base64.b64encode(zlib.compress(content)).decode(),
            fileName=f"{self.merchant_id}_{day:%Y%m%d}.zip",
        )

    # ---- protocol -------------------------------------------------------------------

    async def _checked(self, request: web.Request) -> dict[str, str] | web.Response:
        fields = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if (
            fields.get("merId") != self.merchant_id
            or fields.get("certId") != self.keys.peer_serial
            or not verify(self.keys.peer_public, digest(fields), fields.get("signature", ""))
        ):
            return self._answer(fields, "11")
        return fields

    def notification(self, trade: Trade, refund: TradeRefund | None) -> Notification:
        """The backUrl notification: the transaction's fields, signed like an answer,
        posted as a form."""
        if refund is None:
            order_id, amount = trade.out_trade_no, trade.amount_fen
            kind, sub = self._kinds.get(order_id, (SALE, "06"))
            extra = {"queryId": trade.trade_no, "settleAmt": str(amount)}
        else:
            order_id, amount = refund.out_refund_no, refund.amount_fen
            kind, sub = (VOID if refund.kind == "void" else REFUND), "00"
            extra = {"queryId": refund.refund_no, "origQryId": trade.trade_no}
        request = {
            "txnType": kind,
            "txnSubType": sub,
            "bizType": "000000",
            "orderId": order_id,
            "txnTime": self._txn_times.get(order_id, ""),
        }
        fields = self._fields("notify", request, "00", txnAmt=str(amount), **extra)
        body = urlencode(fields).encode()
        return Notification(body, "application/x-www-form-urlencoded; charset=utf-8", {})

    def _answer(
        self, request: dict[str, str], code: str, trade: Trade | None = None, **extra: str
    ) -> web.Response:
        """The answer to `request` (a query's names the queried transaction's kind)."""
        if trade is not None:
            extra = {"queryId": trade.trade_no, "txnAmt": str(trade.amount_fen), **extra}
        kind = _answer_kind(request) if code in ANSWERED else "error"
        fields = self._fields(kind, request, code, **extra)
        return web.Response(
            body=render_answer(fields).encode("utf-8"),
            content_type="text/plain",
            charset="utf-8",
        )

    def _fields(
        self, kind: str, request: dict[str, str], code: str, **extra: str
    ) -> dict[str, str]:
        """An answer's (or notification's) fields, as the real ones of its kind carry
        them, signed."""
        given = {
            "version": request.get("version", "5.1.0"),
            "encoding": request.get("encoding", "UTF-8"),
            "signMethod": "01",
            "txnType": request.get("txnType", ""),
            "txnSubType": request.get("txnSubType", ""),
            "bizType": request.get("bizType", ""),
            "accessType": request.get("accessType", "0"),
            "merId": self.merchant_id,
            "orderId": request.get("orderId", ""),
            "txnTime": request.get("txnTime", ""),
            "currencyCode": request.get("currencyCode", "156"),
            "respCode": code,
            "respMsg": MESSAGES.get(code, "失败"),
            "reqReserved": request.get("reqReserved", ""),
            "settleDate": request.get("settleDate", ""),
            "fileType": request.get("fileType", ""),
            **extra,
        }
        fields = answer_fields(kind, given)
        fields["signPubKeyCert"] = self.keys.certificate_pem
        fields["signature"] = sign(self.keys.private, digest(fields))
        return fields


def _answer_kind(request: dict[str, str]) -> str:
    if "answer" in request:
        return request["answer"]
    kind, sub = request.get("txnType", ""), request.get("txnSubType", "")
    if kind == SALE:
        return "apply_qr" if sub == APPLY_QR else "sale"
    return {QUERY_TXN: "query", REVERSAL: "reversal", VOID: "void", REFUND: "refund",
            SETTLEMENT_FILE: "file"}.get(kind, "error")  # fmt: skip


def _code(state: TradeState, trade: Trade) -> str:
    if state in (TradeState.SUCCESS, TradeState.REFUND):
        return "00"
    if state in (TradeState.USERPAYING, TradeState.NOTPAY):
        return "05"
    if state is TradeState.PAYERROR:
        return DECLINE_CODES.get(trade.reason, "64")
    return "01"  # reversed, or a code ended unpaid: the transaction failed


def _voidable(trade: Trade, amount: int) -> bool:
    """A void cancels a whole, untouched sale on its settlement day (to 23:00)."""
    return (
        trade.state is TradeState.SUCCESS
        and trade.paid_at is not None
        and settlement_day(int(trade.paid_at * 1000)) == settlement_day(int(time.time() * 1000))
        and amount == trade.amount_fen
        and not trade.refunds
    )


def _settle_day(mmdd: str) -> date:
    today = datetime.now(BEIJING).date()
    day = date(today.year, int(mmdd[:2]), int(mmdd[2:]))
    return day if day <= today else day.replace(year=today.year - 1)
