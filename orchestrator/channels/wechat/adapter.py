"""WeChat Pay API v3: payment code (付款码 codepay), Native QR code and close, query,
reverse (撤销), refund and refund query, trade bill; as a merchant or as a partner for a
sub-merchant (accounts.py). Requests are signed (WECHATPAY2-SHA256-RSA2048) with the
merchant API key under its certificate's serial; every answer must carry a signature by
a platform certificate (or the WeChat Pay public key) that windowpay trusts, or it is
treated as unknown (platform.py). What each state and code means: outcomes.py."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import orjson

from orchestrator.channels.wechat.accounts import Account
from orchestrator.channels.wechat.bill import empty_bill
from orchestrator.channels.wechat.declines import DECLINED, REFUND_DECLINED
from orchestrator.channels.wechat.outcomes import (
    CLOSE_DONE,
    CLOSE_PAID,
    NEVER_CREATED_AFTER_S,
    NO_STATEMENT,
    ORDER_NOT_EXIST,
    PAY_CLOSED,
    REFUND_STATUS,
    REVERSE_DONE,
    STATEMENT_CREATING,
    TRADE_STATES,
    TRY_AGAIN,
    USERPAYING,
)
from orchestrator.channels.wechat.platform import (
    PlatformKeys,
    WeChatMerchant,
    WeChatTrust,
)
from orchestrator.domain.states import Channel
from orchestrator.providers.http import Adapter, HttpAnswer, HttpClient
from orchestrator.providers.port import (
    BillNotReady,
    OutcomeUnknown,
    PayCall,
    ProviderError,
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
SIGNATURE_TYPE = "Wechatpay-Signature-Type"  # absent means SCHEMA; SM2 is not spoken here
# WeChat Pay signs a very few answers and notifications wrongly on purpose, with a
# signature starting so, to see that merchants check signatures: refused like any bad one,
# and named, so that the log does not take WeChat Pay's test for a forgery.
SIGNATURE_PROBE = "WECHATPAY/SIGNTEST/"
BEIJING = ZoneInfo("Asia/Shanghai")
MAX_SKEW_S = 300
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
    """Knows the merchant by its mchid and the application by its appid; in partner mode
    (a sub_mchid given) the partner's ids and the /v3/pay/partner/ paths (accounts.py)."""

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
        sub_mchid: str = "",
        sub_appid: str = "",
        client_ip: str = "127.0.0.1",
        never_created_after_s: float = NEVER_CREATED_AFTER_S,
    ) -> None:
        super().__init__(http, keys, merchant_id, clock, notify_url=notify_url)
        self._never_created_after_s = never_created_after_s
        self._account = Account(merchant_id, appid, sub_mchid, sub_appid)
        # Public-key mode: every request names the WeChat Pay public key, as the official
        # SDKs do. While a merchant moves from platform certificates to it, WeChat Pay signs
        # each answer with the key its request names, and counts those requests to decide
        # when the move is complete (微信支付公钥, 如何从平台证书切换成微信支付公钥).
        self._accept_serial = trust.public_key_id
        self._client_ip = client_ip  # Native's scene_info.payer_client_ip (wiring.py)
        self.platform = PlatformKeys(trust, self._download_certificates, _signed_by, clock)

    async def pay(self, call: PayCall) -> TradeAnswer:
        body = {
            **self._account.ids(),
            "description": call.description,
            "out_trade_no": call.out_trade_no,
            "payer": {"auth_code": call.auth_code},
            "amount": {"total": call.amount_fen, "currency": "CNY"},
            "scene_info": {"store_info": {"out_id": call.store_id}, "device_id": call.terminal_id},
        }
        status, payload = await self._call("POST", self._account.transactions("codepay"), body)
        if _payer_confirming(payload):
            # 202 {"trade_state": "USERPAYING"}: the payer is typing a password. It names
            # no trade, and says nothing but "ask later".
            return TradeAnswer(TradeStatus.CONFIRMING, reason=USERPAYING)
        if status in (200, 202):
            return self._trade(payload, call.trade)
        return self._refusal(status, payload)

    async def query(self, trade: TradeRef) -> TradeAnswer:
        target = self._account.transactions(f"out-trade-no/{trade.out_trade_no}")
        status, payload = await self._call("GET", f"{target}?{self._account.query()}", None)
        if status == 200:
            return self._trade(payload, trade)
        if status == 404 and payload.get("code") == "ORDER_NOT_EXIST":
            return TradeAnswer(TradeStatus.NOT_FOUND, reason="ORDER_NOT_EXIST")
        _fail(status, payload)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        """撤销: done on 200 (the trade named) or 204; asked again on the documented
        "try again" codes. ORDER_NOT_EXIST is "not yet" until the pay call's payment code
        is dead (outcomes.py). The v3 answer has no `recall`."""
        target = self._account.transactions(f"out-trade-no/{trade.out_trade_no}/reverse")
        status, payload = await self._call("POST", target, self._account.ids())
        if status in (200, 204):
            if payload:
                check_bound("out_trade_no", trade.out_trade_no, payload.get("out_trade_no"))
                self._account.check_named(payload)
            return ReverseAnswer(ReverseStatus.DONE, "reversed")
        code = str(payload.get("code", ""))
        if code in REVERSE_DONE:
            return ReverseAnswer(ReverseStatus.DONE, code)
        if code == ORDER_NOT_EXIST:
            return await self._never_created(trade)
        if code in TRY_AGAIN or status >= 500:
            return ReverseAnswer(ReverseStatus.RETRY, code or str(status))
        _fail(status, payload)

    async def _never_created(self, trade: TradeRef) -> ReverseAnswer:
        """A reverse answered ORDER_NOT_EXIST. Until never_created_after_s after the pay
        call (or when its time is unknown) the pay call may still create the trade: ask
        again. After that, once the query also finds no trade, nothing was taken and the
        expired payment code cannot be taken any more: the reverse is done, and the order
        is payable again without waiting out the reversal window."""
        not_yet = ReverseAnswer(ReverseStatus.RETRY, ORDER_NOT_EXIST)
        if trade.at_ms <= 0 or self._clock() - trade.at_ms / 1000 < self._never_created_after_s:
            return not_yet
        try:
            found = await self.query(trade)
        except ProviderError:
            return not_yet
        if found.status is not TradeStatus.NOT_FOUND:
            return ReverseAnswer(ReverseStatus.RETRY, f"{ORDER_NOT_EXIST}, query: {found.reason}")
        return ReverseAnswer(ReverseStatus.DONE, f"{ORDER_NOT_EXIST}: never created, code expired")

    async def create_qr(self, call: QrCall) -> QrAnswer:
        """Native payment (Native支付): the code_url the payer scans. Its answer names no
        trade; the signature binds it to this merchant's request, and every later query
        is checked against the trade number, merchant and amount as for a payment code."""
        body = {
            **self._account.ids(),
            "description": call.description,
            "out_trade_no": call.out_trade_no,
            "time_expire": datetime.fromtimestamp(call.expires_at_ms / 1000, BEIJING).isoformat(
                timespec="seconds"
            ),
            "notify_url": self._notify_url,
            "amount": {"total": call.amount_fen, "currency": "CNY"},
            "scene_info": {
                "payer_client_ip": self._client_ip,
                "device_id": call.terminal_id,
                "store_info": {"id": call.store_id},
            },
        }
        status, payload = await self._call("POST", self._account.transactions("native"), body)
        code_url = payload.get("code_url")
        if status == 200 and isinstance(code_url, str) and code_url:
            return QrAnswer(code_url)
        _fail(status, payload)

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        target = self._account.transactions(f"out-trade-no/{trade.out_trade_no}/close")
        status, payload = await self._call("POST", target, self._account.merchant_ids())
        code = str(payload.get("code", ""))
        if status == 204 or code in CLOSE_DONE:
            return ReverseAnswer(ReverseStatus.DONE, "closed")
        if code == CLOSE_PAID:
            return ReverseAnswer(ReverseStatus.PAID, code)
        if code in TRY_AGAIN or status >= 500:
            return ReverseAnswer(ReverseStatus.RETRY, code or str(status))
        _fail(status, payload)

    async def refund(self, call: RefundCall) -> RefundAnswer:
        body: dict[str, Any] = {
            **self._account.sub_merchant(),
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
        refusal = code in REFUND_DECLINED or (400 <= status < 500 and status not in (401, 429))
        if refusal and code not in TRY_AGAIN:
            # A documented refusal, or another business refusal (4xx): final once the
            # refund's own query confirms nothing was refunded. A "try again" code is
            # none, whatever its status: the same refund is sent again.
            return await self._refused(call, code)
        _fail(status, payload)

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        target = f"/v3/refund/domestic/refunds/{call.out_refund_no}"
        status, payload = await self._call(
            "GET", target + self._account.sub_merchant_query("?"), None
        )
        if status == 200:
            return self._refund(payload, call)
        if status == 404 and payload.get("code") == "RESOURCE_NOT_EXISTS":
            return RefundAnswer(RefundStatus.NOT_FOUND, reason="RESOURCE_NOT_EXISTS")
        _fail(status, payload)

    async def bill(self, day: date) -> bytes:
        """The day's trade bill (CSV, every field prefixed with a backtick). A day without
        trades has no bill at WeChat (NO_STATEMENT_EXIST): its bill is the empty one. A bill
        not made yet (STATEMENT_CREATING) is BillNotReady: ask again later."""
        target = f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL"
        status, payload = await self._call(
            "GET", target + self._account.sub_merchant_query("&"), None
        )
        code = payload.get("code")
        if status != 200 and code == NO_STATEMENT:
            return empty_bill()
        if status != 200 and code == STATEMENT_CREATING:
            raise BillNotReady(f"WeChat Pay's bill of {day} is being made ({code})")
        if status != 200:
            _fail(status, payload)
        url = payload["download_url"]
        answer = await self._http.request(
            "GET",
            url,
            headers=self._headers("GET", _path_of(url), b""),
            timeout_s=DOWNLOAD_TIMEOUT_S,
        )
        if answer.status != 200:
            raise OutcomeUnknown(f"bill download answered {answer.status}")
        digest = hashlib.sha1(answer.body, usedforsecurity=False).hexdigest()
        if digest != payload.get("hash_value"):
            raise OutcomeUnknown("bill file does not match its SHA1 hash")
        return answer.body

    async def _refused(self, call: RefundCall, code: str) -> RefundAnswer:
        """A refund refused with a 4xx business error. It is final (nothing refunded, the
        amount released) once the refund's own query shows no refund under its number;
        a refund that exists after all (an earlier send went through) answers for itself,
        and no answer leaves it pending."""
        try:
            found = await self.refund_query(call)
        except ProviderError as error:
            return RefundAnswer(RefundStatus.PENDING, reason=f"{code}; refund query: {error}")
        if found.status is RefundStatus.NOT_FOUND:
            return RefundAnswer(RefundStatus.FAILED, reason=code)
        return found

    # ---- protocol -------------------------------------------------------------------

    def _headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The request's Authorization (and, in public-key mode, its Wechatpay-Serial)."""
        now = self._clock()
        signed = authorization(self._keys, self._merchant_id, method, target, body, now)
        if not self._accept_serial:
            return {"Authorization": signed}
        return {"Authorization": signed, "Wechatpay-Serial": self._accept_serial}

    async def _call(
        self, method: str, target: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        payload = orjson.dumps(body) if body is not None else b""
        headers = {
            **self._headers(method, target, payload),
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
        headers = {**self._headers("GET", target, b""), "Accept": "application/json"}
        return await self._http.request("GET", target, headers=headers)

    async def _check_signature(self, answer: HttpAnswer) -> None:
        timestamp = answer.headers.get("Wechatpay-Timestamp", "")
        serial = answer.headers.get("Wechatpay-Serial", "")
        if answer.headers.get(SIGNATURE_TYPE, SCHEMA) != SCHEMA:
            raise OutcomeUnknown(f"answer signed as {answer.headers.get(SIGNATURE_TYPE)!r}")
        if not timestamp.isdigit() or abs(self._clock() - int(timestamp)) > MAX_SKEW_S:
            raise OutcomeUnknown("answer timestamp missing or stale")
        if answer.headers.get("Wechatpay-Signature", "").startswith(SIGNATURE_PROBE):
            raise OutcomeUnknown(f"answer carries WeChat Pay's signature probe ({SIGNATURE_PROBE})")
        key = await self.platform.key_for(serial)
        if key is None:
            raise OutcomeUnknown(f"answer signed with unknown platform key {serial!r}")
        if not _signed_by(answer, {serial: key}):
            raise OutcomeUnknown("answer signature does not verify")

    def _trade(self, payload: dict[str, Any], trade: TradeRef) -> TradeAnswer:
        """A trade answer, once it is shown to be about the trade that was asked."""
        check_bound("out_trade_no", trade.out_trade_no, payload.get("out_trade_no"))
        self._account.check_named(payload)
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
        if code in PAY_CLOSED:
            return TradeAnswer(TradeStatus.CLOSED, reason=code)
        _fail(status, payload)


def _payer_confirming(payload: Mapping[str, Any]) -> bool:
    """The code payment's "payer is confirming" answer, which names no trade: 202
    {"trade_state": "USERPAYING"} (also taken as the error form {"code": "USERPAYING"})."""
    says = payload.get("trade_state") == USERPAYING or payload.get("code") == USERPAYING
    return says and "out_trade_no" not in payload


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
