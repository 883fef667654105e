"""WeChat Pay API v3, payment-code (付款码) payments: codepay, query, reverse, refund,
trade bill. Requests are signed (WECHATPAY2-SHA256-RSA2048) with the merchant API key
under its certificate's serial; every answer must carry a signature by a platform
certificate (or the WeChat Pay public key) that windowpay trusts, or it is treated as
unknown (wechat_platform.py)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import orjson

from orchestrator.channels.wechat.declines import DECLINED, REFUND_DECLINED
from orchestrator.channels.wechat.platform import (
    PlatformKeys,
    WeChatMerchant,
    WeChatTrust,
)
from orchestrator.domain.states import Channel
from orchestrator.providers.http import Adapter, HttpAnswer, HttpClient
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    ProviderUnavailable,
    QrAnswer,
    QrCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
    check_bound,
)
from orchestrator.providers.signing import PublicKey, sign, verify

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
BEIJING = ZoneInfo("Asia/Shanghai")
MAX_SKEW_S = 300

TRADE_STATES = {
    "SUCCESS": TradeStatus.PAID,
    "REFUND": TradeStatus.PAID,  # paid, then (partly) refunded
    "USERPAYING": TradeStatus.CONFIRMING,
    "NOTPAY": TradeStatus.CONFIRMING,
    "PAYERROR": TradeStatus.DECLINED,
    "CLOSED": TradeStatus.CLOSED,
    "REVOKED": TradeStatus.CLOSED,
}
CLOSED = frozenset({"ORDER_CLOSED", "ORDER_REVERSED"})
REFUND_STATUS = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "CLOSED": RefundStatus.FAILED,
    "PROCESSING": RefundStatus.PENDING,
    "ABNORMAL": RefundStatus.PENDING,  # stuck at the payer's bank: a person decides
}
DOWNLOAD_TIMEOUT_S = 60.0


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    keys: WeChatMerchant, mchid: str, method: str, target: str, body: bytes, now: float
) -> str:
    timestamp, nonce = str(int(now)), secrets.token_hex(16)
    signature = sign(keys.private, request_message(method, target, timestamp, nonce, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{keys.own_serial}"'
    )


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of an Authorization header ({} when it is not ours)."""
    schema, _, rest = header.partition(" ")
    if schema != SCHEMA:
        return {}
    fields = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] == '"':
            fields[name] = value[1:-1]
    return fields


class WeChatPay(Adapter[WeChatMerchant]):
    """Knows the merchant by its mchid, and the application by its appid."""

    channel = Channel.WECHAT

    def __init__(
        self,
        http: HttpClient,
        keys: WeChatMerchant,
        merchant_id: str,
        appid: str,
        trust: WeChatTrust,
        clock: Callable[[], float] = time.time,
        *,
        notify_url: str = "",
    ) -> None:
        super().__init__(http, keys, merchant_id, clock, notify_url=notify_url)
        self._appid = appid
        self.platform = PlatformKeys(trust, self._download_certificates, _signed_by, clock)

    async def pay(self, call: PayCall) -> TradeAnswer:
        body = {
            "appid": self._appid,
            "mchid": self._merchant_id,
            "description": call.description,
            "out_trade_no": call.out_trade_no,
            "payer": {"auth_code": call.auth_code},
            "amount": {"total": call.amount_fen, "currency": "CNY"},
            "scene_info": {"store_info": {"out_id": call.store_id}, "device_id": call.terminal_id},
        }
        status, payload = await self._call("POST", "/v3/pay/transactions/codepay", body)
        if status == 200:
            return self._trade(payload, call.trade)
        if status == 202 and payload.get("code") == "USERPAYING":
            return TradeAnswer(TradeStatus.CONFIRMING)
        return self._refusal(status, payload)

    async def query(self, trade: TradeRef) -> TradeAnswer:
        target = f"/v3/pay/transactions/out-trade-no/{trade.out_trade_no}?mchid={self._merchant_id}"
        status, payload = await self._call("GET", target, None)
        if status == 200:
            return self._trade(payload, trade)
        if status == 404 and payload.get("code") == "ORDER_NOT_EXIST":
            return TradeAnswer(TradeStatus.NOT_FOUND, reason="ORDER_NOT_EXIST")
        _fail(status, payload)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        target = f"/v3/pay/transactions/out-trade-no/{trade.out_trade_no}/reverse"
        status, payload = await self._call(
            "POST", target, {"appid": self._appid, "mchid": self._merchant_id}
        )
        if status == 200:
            if payload.get("recall") == "Y":
                return ReverseAnswer(ReverseStatus.RETRY, "recall=Y")
            return ReverseAnswer(ReverseStatus.DONE, "reversed")
        _fail(status, payload)

    async def create_qr(self, call: QrCall) -> QrAnswer:
        """Native payment (Native支付): the code_url the payer scans. Its answer names no
        trade; the signature binds it to this merchant's request, and every later query
        is checked against the trade number, merchant and amount as for a payment code."""
        body = {
            "appid": self._appid,
            "mchid": self._merchant_id,
            "description": call.description,
            "out_trade_no": call.out_trade_no,
            "time_expire": datetime.fromtimestamp(call.expires_at_ms / 1000, BEIJING).isoformat(
                timespec="seconds"
            ),
            "notify_url": self._notify_url,
            "amount": {"total": call.amount_fen, "currency": "CNY"},
            "scene_info": {"store_info": {"id": call.store_id}, "device_id": call.terminal_id},
        }
        status, payload = await self._call("POST", "/v3/pay/transactions/native", body)
        code_url = payload.get("code_url")
        if status == 200 and isinstance(code_url, str) and code_url:
            return QrAnswer(code_url)
        _fail(status, payload)

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        target = f"/v3/pay/transactions/out-trade-no/{trade.out_trade_no}/close"
        status, payload = await self._call("POST", target, {"mchid": self._merchant_id})
        code = str(payload.get("code", ""))
        if status == 204 or code in ("ORDER_CLOSED", "ORDER_NOT_EXIST"):
            return ReverseAnswer(ReverseStatus.DONE, "closed")
        if code == "ORDERPAID":
            return ReverseAnswer(ReverseStatus.PAID, code)
        if code in ("SYSTEM_ERROR", "SYSTEMERROR", "USER_PAYING") or status >= 500:
            return ReverseAnswer(ReverseStatus.RETRY, code or str(status))
        _fail(status, payload)

    async def refund(self, call: RefundCall) -> RefundAnswer:
        body = {
            "out_trade_no": call.trade.out_trade_no,
            "out_refund_no": call.out_refund_no,
            "amount": {
                "refund": call.refund_fen,
                "total": call.trade.amount_fen,
                "currency": "CNY",
            },
        }
        if self._notify_url:
            body["notify_url"] = self._notify_url  # 退款结果通知
        status, payload = await self._call("POST", "/v3/refund/domestic/refunds", body)
        if status == 200:
            return self._refund(payload, call)
        code = str(payload.get("code", status))
        if code in REFUND_DECLINED:
            return RefundAnswer(RefundStatus.FAILED, reason=code)
        if 400 <= status < 500 and status not in (401, 429):
            # "already refunded", "refund in progress", an unknown code: ask the refund.
            return RefundAnswer(RefundStatus.PENDING, reason=code)
        _fail(status, payload)

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        status, payload = await self._call(
            "GET", f"/v3/refund/domestic/refunds/{call.out_refund_no}", None
        )
        if status == 200:
            return self._refund(payload, call)
        if status == 404 and payload.get("code") == "RESOURCE_NOT_EXISTS":
            return RefundAnswer(RefundStatus.NOT_FOUND, reason="RESOURCE_NOT_EXISTS")
        _fail(status, payload)

    async def bill(self, day: date) -> bytes:
        """The day's trade bill (CSV, every field prefixed with a backtick)."""
        target = f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL"
        status, payload = await self._call("GET", target, None)
        if status != 200:
            _fail(status, payload)
        url = payload["download_url"]
        answer = await self._http.request(
            "GET",
            url,
            headers={"Authorization": self._authorization("GET", _path_of(url), b"")},
            timeout_s=DOWNLOAD_TIMEOUT_S,
        )
        if answer.status != 200:
            raise OutcomeUnknown(f"bill download answered {answer.status}")
        digest = hashlib.sha1(answer.body, usedforsecurity=False).hexdigest()
        if digest != payload.get("hash_value"):
            raise OutcomeUnknown("bill file does not match its SHA1 hash")
        return answer.body

    # ---- protocol -------------------------------------------------------------------

    def _authorization(self, method: str, target: str, body: bytes) -> str:
        return authorization(self._keys, self._merchant_id, method, target, body, self._clock())

    async def _call(
        self, method: str, target: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        payload = orjson.dumps(body) if body is not None else b""
        headers = {
            "Authorization": self._authorization(method, target, payload),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        answer = await self._http.request(method, target, body=payload or None, headers=headers)
        if answer.status >= 500 and "Wechatpay-Signature" not in answer.headers:
            # Unsigned: maybe a proxy in front of a gateway that did the work.
            raise OutcomeUnknown(f"{method} {target} answered an unsigned {answer.status}")
        await self._check_signature(answer)
        try:
            parsed = orjson.loads(answer.body) if answer.body else {}
        except orjson.JSONDecodeError:
            raise OutcomeUnknown(f"{method} {target}: answer is not JSON") from None
        return answer.status, parsed

    async def _download_certificates(self) -> HttpAnswer:
        target = "/v3/certificates"
        headers = {
            "Authorization": self._authorization("GET", target, b""),
            "Accept": "application/json",
        }
        return await self._http.request("GET", target, headers=headers)

    async def _check_signature(self, answer: HttpAnswer) -> None:
        timestamp = answer.headers.get("Wechatpay-Timestamp", "")
        serial = answer.headers.get("Wechatpay-Serial", "")
        if not timestamp.isdigit() or abs(self._clock() - int(timestamp)) > MAX_SKEW_S:
            raise OutcomeUnknown("answer timestamp missing or stale")
        key = await self.platform.key_for(serial)
        if key is None:
            raise OutcomeUnknown(f"answer signed with unknown platform key {serial!r}")
        if not _signed_by(answer, {serial: key}):
            raise OutcomeUnknown("answer signature does not verify")

    def _trade(self, payload: dict[str, Any], trade: TradeRef) -> TradeAnswer:
        """A trade answer, once it is shown to be about the trade that was asked."""
        check_bound("out_trade_no", trade.out_trade_no, payload.get("out_trade_no"))
        check_bound("mchid", self._merchant_id, payload.get("mchid"))
        amount = payload.get("amount")
        check_bound(
            "amount", trade.amount_fen, amount.get("total") if isinstance(amount, dict) else None
        )
        state = payload.get("trade_state", "")
        status = TRADE_STATES.get(state)
        if status is None:
            raise OutcomeUnknown(f"unknown trade_state {state!r}")
        return TradeAnswer(status, payload.get("transaction_id", ""), state)

    @staticmethod
    def _refund(payload: dict[str, Any], call: RefundCall) -> RefundAnswer:
        check_bound("out_refund_no", call.out_refund_no, payload.get("out_refund_no"))
        amount = payload.get("amount")
        check_bound(
            "refund amount",
            call.refund_fen,
            amount.get("refund") if isinstance(amount, dict) else None,
        )
        state = str(payload.get("status", ""))
        status = REFUND_STATUS.get(state, RefundStatus.PENDING)
        return RefundAnswer(status, str(payload.get("refund_id", "")), state)

    @staticmethod
    def _refusal(status: int, payload: dict[str, Any]) -> TradeAnswer:
        code = str(payload.get("code", ""))
        if code in DECLINED:
            return TradeAnswer(TradeStatus.DECLINED, reason=code)
        if code in CLOSED:
            return TradeAnswer(TradeStatus.CLOSED, reason=code)
        _fail(status, payload)


def _signed_by(answer: HttpAnswer, keys: Mapping[str, PublicKey]) -> bool:
    """The answer's Wechatpay-Signature verifies under the key its Wechatpay-Serial names."""
    headers = answer.headers
    key = keys.get(headers.get("Wechatpay-Serial", ""))
    message = answer_message(
        headers.get("Wechatpay-Timestamp", ""), headers.get("Wechatpay-Nonce", ""), answer.body
    )
    return key is not None and verify(key, message, headers.get("Wechatpay-Signature", ""))


def _fail(status: int, payload: dict[str, Any]) -> NoReturn:
    """An error answer that is no trade outcome, mapped onto the port's error tree."""
    code = str(payload.get("code", ""))
    message = f"HTTP {status} {code}: {payload.get('message', '')}"
    if status == 429 or code == "FREQUENCY_LIMITED":
        raise ProviderUnavailable(message)
    if status >= 500 or code in ("SYSTEM_ERROR", "SYSTEMERROR", "BANKERROR"):
        raise OutcomeUnknown(message)
    raise ProviderRejected(message)


def _path_of(url: str) -> str:
    """'/v3/billdownload/file?token=..' of a full URL (what the signature covers)."""
    after_scheme = url.split("://", 1)[-1]
    slash = after_scheme.find("/")
    return after_scheme[slash:] if slash >= 0 else "/"
