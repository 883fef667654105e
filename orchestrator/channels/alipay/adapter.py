"""Alipay OpenAPI, face-to-face payments (当面付): trade.pay (bar_code), query, cancel
(honouring retry_flag), refund and its query, precreate (a QR code for the payer to scan)
and close, and the bill download URL. Requests carry an RSA2 signature over the sorted
parameters; answers are verified over the raw JSON text of their *_response member, with
the Alipay public key or, in certificate mode, with the Alipay certificate the answer's
alipay_cert_sn names (trust.py; a new one is downloaded and trusted by its chain to the
root). An answer without a sign decides nothing, and says what the gateway said. What
each verified answer means: outcomes.py."""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode

import orjson

from orchestrator.channels.alipay import outcomes
from orchestrator.channels.alipay.outcomes import BEIJING, CloseNext
from orchestrator.channels.alipay.trust import AlipayKeys
from orchestrator.domain.money import to_yuan
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import CertificateError
from orchestrator.providers.http import Adapter, HttpClient
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderError,
    ProviderRejected,
    QrAnswer,
    QrCall,
    RefundAnswer,
    RefundCall,
    ReverseAnswer,
    TradeAnswer,
    TradeRef,
)
from orchestrator.providers.signing import PublicKey, sign, sorted_pairs, verify

log = logging.getLogger(__name__)

GATEWAY = "/gateway.do"
SIGNED_EXCEPT = frozenset({"sign"})

DOWNLOAD_TIMEOUT_S = 60.0
CERT_DOWNLOAD = "alipay.open.app.alipaycert.download"
CERT_DOWNLOAD_EVERY_S = 60.0  # at most one download of an unknown certificate a minute
OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_]{1,64}$")


# subject: "不可使用特殊字符，如 /，=，& 等", at most 256 characters (the API reference).
SUBJECT_MAX = 256
SUBJECT_SAFE = str.maketrans({"/": "／", "=": "＝", "&": "＆"})


def subject(description: str) -> str:
    """The order title as the gateway takes it: "/", "=" and "&" in their full-width
    forms, at most SUBJECT_MAX characters."""
    return description.translate(SUBJECT_SAFE)[:SUBJECT_MAX]


def raw_member(text: str, name: str) -> str | None:
    """The exact JSON text of the top-level member `name` of a JSON object (what the
    gateway signed), without re-serialising it."""
    key = f'"{name}"'
    position = text.find(key)
    while position >= 0:
        cursor = position + len(key)
        while cursor < len(text) and text[cursor] in " \t\r\n":
            cursor += 1
        if cursor < len(text) and text[cursor] == ":":
            cursor += 1
            while cursor < len(text) and text[cursor] in " \t\r\n":
                cursor += 1
            end = _value_end(text, cursor)
            return text[cursor:end] if end > cursor else None
        position = text.find(key, cursor)
    return None


def _value_end(text: str, start: int) -> int:
    """Index just past the JSON object or array that starts at `start`."""
    if start >= len(text) or text[start] not in "{[":
        return -1
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


class Alipay(Adapter[AlipayKeys]):
    """Knows the merchant by its app_id."""

    channel = Channel.ALIPAY

    def __init__(
        self,
        http: HttpClient,
        keys: AlipayKeys,
        merchant_id: str,
        clock: Callable[[], float] = time.time,
        *,
        notify_url: str = "",
    ) -> None:
        super().__init__(http, keys, merchant_id, clock, notify_url=notify_url)
        self._cert_asked: dict[str, float] = {}  # SN -> when its download was last asked

    @property
    def keys(self) -> AlipayKeys:
        return self._keys

    async def pay(self, call: PayCall) -> TradeAnswer:
        if not OUT_TRADE_NO.match(call.out_trade_no):
            raise ProviderRejected(f"out_trade_no {call.out_trade_no!r}: letters, digits, _ only")
        answer = await self._call(
            "alipay.trade.pay",
            {
                "out_trade_no": call.out_trade_no,
                "scene": "bar_code",
                "auth_code": call.auth_code,
                "subject": subject(call.description),
                "total_amount": to_yuan(call.amount_fen),
                "store_id": call.store_id,
                "terminal_id": call.terminal_id,
            },
        )
        return outcomes.pay_answer(answer, call.trade)

    async def query(self, trade: TradeRef) -> TradeAnswer:
        answer = await self._call("alipay.trade.query", {"out_trade_no": trade.out_trade_no})
        return outcomes.query_answer(answer, trade)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        answer = await self._call("alipay.trade.cancel", {"out_trade_no": trade.out_trade_no})
        return outcomes.cancel_answer(answer, trade)

    async def refund(self, call: RefundCall) -> RefundAnswer:
        answer = await self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": call.trade.out_trade_no,
                "out_request_no": call.out_refund_no,
                "refund_amount": to_yuan(call.refund_fen),
            },
        )
        return outcomes.refund_answer(answer, call.trade)

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        """Under the older contract an answer with the refund's data means it went
        through, REFUND_SUCCESS or no refund_status; the empty answer: no such refund (yet)."""
        found = await self.refund_found(call.trade.out_trade_no, call.out_refund_no)
        return outcomes.refund_status(found, call.refund_fen)

    async def refund_found(
        self, out_trade_no: str, out_request_no: str
    ) -> tuple[int, str, str] | None:
        """(the refund's own amount, its refund_status, the trade_no) by
        alipay.trade.fastpay.refund.query, or None when the gateway has no such refund."""
        answer = await self._call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": out_trade_no, "out_request_no": out_request_no},
        )
        return outcomes.refund_found(answer, out_trade_no, out_request_no)

    async def create_qr(self, call: QrCall) -> QrAnswer:
        """alipay.trade.precreate: a QR code the payer scans. The trade exists at Alipay
        only once the payer scanned it (until then a query answers TRADE_NOT_EXIST)."""
        if not OUT_TRADE_NO.match(call.out_trade_no):
            raise ProviderRejected(f"out_trade_no {call.out_trade_no!r}: letters, digits, _ only")
        minutes = max(1, math.ceil((call.expires_at_ms - call.at_ms) / 60_000))
        answer = await self._call(
            "alipay.trade.precreate",
            {
                "out_trade_no": call.out_trade_no,
                "total_amount": to_yuan(call.amount_fen),
                "subject": subject(call.description),
                "store_id": call.store_id,
                "terminal_id": call.terminal_id,
                "timeout_express": f"{minutes}m",
            },
        )
        return QrAnswer(outcomes.qr_code(answer, call.out_trade_no))

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        """alipay.trade.close; a trade the payer never scanned does not exist yet and is
        cancelled instead (which closes its number for good). ACQ.TRADE_STATUS_ERROR: the
        trade can no longer be closed, because it was paid or is closed already (by its
        own timeout, say); a query tells which."""
        answer = await self._call("alipay.trade.close", {"out_trade_no": trade.out_trade_no})
        closed = outcomes.close_answer(answer, trade)
        if closed is CloseNext.QUERY:
            return outcomes.not_closable(await self.query(trade))
        if closed is CloseNext.CANCEL:
            return await self.reverse(trade)
        return closed

    async def bill(self, day: date) -> bytes:
        """The day's trade detail bill: a zip of GBK CSV files. The gateway answers
        isp.bill_not_exist both for a day without trades and for a bill not made yet; the
        documented time tells them apart: a day's bill is there by 09:00 Beijing time the
        next day. Before then BillNotReady (ask again later), after it NoTradesThatDay."""
        answer = await self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": day.isoformat()},
        )
        url = outcomes.bill_download_url(answer, day, self._clock())
        # as given: the URL carries a token, and its fileId is written %2F…
        download = await self._http.download(url, timeout_s=DOWNLOAD_TIMEOUT_S)
        if download.status != 200 or not download.body:
            raise OutcomeUnknown(f"bill download answered {download.status}, empty or not")
        return download.body

    # ---- protocol -------------------------------------------------------------------

    def signed_params(self, method: str, biz: dict[str, Any]) -> dict[str, str]:
        params = {
            "app_id": self._merchant_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.fromtimestamp(self._clock(), BEIJING).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "version": "1.0",
            "biz_content": orjson.dumps(biz).decode(),
            **self._keys.request_params(),
        }
        if self._notify_url:
            params["notify_url"] = self._notify_url  # 异步通知, for the trade and its refunds
        params["sign"] = sign(
            self._keys.private, sorted_pairs(params, exclude=SIGNED_EXCEPT).encode()
        )
        return params

    async def _post(self, method: str, biz: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The answer's envelope and the raw text of its member, not yet verified."""
        body = urlencode(self.signed_params(method, biz)).encode()
        answer = await self._http.request(
            "POST",
            GATEWAY,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
        if answer.status != 200:
            # Unsigned, maybe from a proxy in front of a gateway that did the work.
            raise OutcomeUnknown(f"{method} answered HTTP {answer.status}")
        text = answer.body.decode("utf-8", errors="replace")
        name = method.replace(".", "_") + "_response"
        raw = raw_member(text, name) or raw_member(text, "error_response")
        try:
            envelope = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise OutcomeUnknown(f"{method}: answer is not JSON") from None
        if not isinstance(envelope, dict) or raw is None:
            raise OutcomeUnknown(f"{method}: answer has no {name}")
        return envelope, raw

    async def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        envelope, raw = await self._post(method, biz)
        member = _member(method, raw)
        if not envelope.get("sign"):
            _unsigned(method, member)
        cert_sn = str(envelope.get("alipay_cert_sn", ""))
        if self._keys.certificates is not None and not cert_sn and _succeeded(member):
            # As Alipay's Java client: in certificate mode a success names its certificate.
            raise OutcomeUnknown(
                f"{method}: a success answer without alipay_cert_sn in certificate mode "
                "(is the gateway the one of this app, and is the app in certificate mode?)"
            )
        key = self._keys.answer_key(cert_sn)
        if key is None and cert_sn and self._keys.certificates is not None:
            key = await self._download_certificate(cert_sn)
        if key is None:
            raise OutcomeUnknown(
                f"{method}: signed with Alipay certificate {envelope.get('alipay_cert_sn')!r}, "
                "which is neither configured nor could be downloaded"
            )
        if not _verifies(key, raw, str(envelope.get("sign", ""))):
            raise OutcomeUnknown(f"{method}: answer signature does not verify")
        return member

    async def _download_certificate(self, cert_sn: str) -> PublicKey | None:
        """Alipay's certificate `cert_sn`, by alipay.open.app.alipaycert.download, once it
        chains to the configured root file (then kept for answers and notifications);
        None when it cannot be had. Asked at most once per CERT_DOWNLOAD_EVERY_S for an
        SN. The download's own answer is not checked by signature (it names the new
        certificate): its content is trusted by its chain, as Alipay's SDKs do."""
        now = self._clock()
        if now - self._cert_asked.get(cert_sn, -math.inf) < CERT_DOWNLOAD_EVERY_S:
            return None
        self._cert_asked[cert_sn] = now
        try:
            _, raw = await self._post(CERT_DOWNLOAD, {"alipay_cert_sn": cert_sn})
            member = _member(CERT_DOWNLOAD, raw)
            if member.get("code") != "10000":
                raise OutcomeUnknown(f"answered {_reason(member)}")
            pem = base64.b64decode(str(member.get("alipay_cert_content", "")), validate=True)
            key = self._keys.learn(cert_sn, pem, datetime.fromtimestamp(now, UTC))
        except (ProviderError, CertificateError, binascii.Error) as error:
            log.error(
                "Alipay signs with a certificate windowpay does not have, and it could not "
                "be downloaded and trusted; every answer it signs stays unknown",
                extra={"alipay_cert_sn": cert_sn, "why": str(error)},
            )
            return None
        log.warning(
            "Alipay's certificate changed: downloaded and trusted (it chains to the root)",
            extra={"alipay_cert_sn": cert_sn},
        )
        return key


def _verifies(key: PublicKey, raw: str, signature: str) -> bool:
    """The signature over the member's raw text, or, as Alipay's Java and .NET clients
    try next, over that text with every "\\/" written "/" (answers signed over the
    unescaped text have occurred). The answer is read from its raw text either way."""
    if verify(key, raw.encode(), signature):
        return True
    return "\\/" in raw and verify(key, raw.replace("\\/", "/").encode(), signature)


def _member(method: str, raw: str) -> dict[str, Any]:
    """The answer's member read (its signature is checked apart, over `raw`)."""
    try:
        member = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OutcomeUnknown(f"{method}: the answer's member is not JSON") from None
    if not isinstance(member, dict):
        raise OutcomeUnknown(f"{method}: the answer's member is not an object")
    return member


def _reason(member: dict[str, Any]) -> str:
    return " ".join(str(member.get(f, "")) for f in ("code", "msg", "sub_code", "sub_msg")).strip()


def _succeeded(member: dict[str, Any]) -> bool:
    return member.get("code") in ("10000", "10003")


def _unsigned(method: str, member: dict[str, Any]) -> NoReturn:
    """An answer without a sign decides nothing. The gateway answers so when it could not
    take the request as the app's (an unknown app_id, a key not uploaded, a signature of
    another key): its code and sub_msg say which, so they are passed on, never read as
    a decline. Alipay's SDKs skip the check for such answers; windowpay keeps the
    outcome unknown."""
    if _succeeded(member):
        raise OutcomeUnknown(f"{method}: a success answer without a signature")
    reason = _reason(member)
    log.warning(
        "Alipay answered unsigned (check app_id, the uploaded key, the gateway URL)",
        extra={"method": method, "gateway_said": reason},
    )
    raise OutcomeUnknown(f"{method}: unsigned answer: {reason}")
