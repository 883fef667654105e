"""WeChat Pay v3 notifications (支付成功 / 退款结果通知): a JSON POST whose body is signed
like an answer (Wechatpay-Timestamp, -Nonce, -Signature, -Serial over
"timestamp\\nnonce\\nbody\\n") by a platform certificate or the WeChat Pay public key, and
whose `resource` is sealed with AEAD_AES_256_GCM under the merchant's APIv3 key.

The resource must name this merchant: its mchid, or in partner mode its sp_mchid and the
sub-merchant's sub_mchid. A Wechatpay-Signature-Type other than WECHATPAY2-SHA256-RSA2048
(WeChat's SM2 signatures) is refused: windowpay does not speak it. WeChat Pay's own
signature probes (a signature starting WECHATPAY/SIGNTEST/) are refused as it expects,
named as probes, before any key is looked up.

Success is answered with HTTP 204 and no body; a refusal with a 4xx/5xx and
{"code": "FAIL", "message": ...}, after which WeChat Pay sends it again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from orchestrator.channels.wechat.accounts import Account
from orchestrator.channels.wechat.adapter import (
    SCHEMA,
    SIGNATURE_PROBE,
    SIGNATURE_TYPE,
    answer_message,
)
from orchestrator.channels.wechat.outcomes import REFUND_STATUS, TRADE_STATES
from orchestrator.channels.wechat.platform import decrypt_resource, encrypt_resource
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import CertificateError
from orchestrator.providers.notices import Notice, NoticeProbe, NoticeRefused
from orchestrator.providers.port import AnswerMismatch
from orchestrator.providers.signing import PublicKey, verify

KeyFor = Callable[[str], Awaitable[PublicKey | None]]  # PlatformKeys.key_for

TRANSACTION = "TRANSACTION."
REFUND = "REFUND."


class WeChatNotifications:
    channel = Channel.WECHAT

    def __init__(
        self,
        key_for: KeyFor,
        apiv3_key: bytes,
        merchant_id: str,
        max_skew_s: float,
        clock: Callable[[], float] = time.time,
        *,
        sub_mchid: str = "",
    ) -> None:
        self._key_for = key_for
        self._apiv3_key = apiv3_key
        self._account = Account(merchant_id, "", sub_mchid)
        self._max_skew_s = max_skew_s
        self._clock = clock

    async def verify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        timestamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        signature = headers.get("Wechatpay-Signature", "")
        serial = headers.get("Wechatpay-Serial", "")
        if not (timestamp and nonce and signature and serial):
            raise NoticeRefused("unsigned: a Wechatpay-* signature header is missing")
        if headers.get(SIGNATURE_TYPE, SCHEMA) != SCHEMA:
            raise NoticeRefused(f"signature type {headers.get(SIGNATURE_TYPE)!r} not spoken")
        if not timestamp.isdigit() or abs(self._clock() - int(timestamp)) > self._max_skew_s:
            raise NoticeRefused(f"timestamp {timestamp!r} outside the allowed skew (replay?)")
        if signature.startswith(SIGNATURE_PROBE):
            raise NoticeProbe(f"WeChat Pay's signature probe ({SIGNATURE_PROBE}): refused")
        key = await self._key_for(serial)
        if key is None:
            raise NoticeRefused(f"signed under unknown serial {serial[:64]!r}")
        if not verify(key, answer_message(timestamp, nonce, body), signature):
            raise NoticeRefused("signature does not verify")
        try:
            envelope = orjson.loads(body)
            event_type = str(envelope["event_type"])
            resource = envelope["resource"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise NoticeRefused("not a notification envelope") from None
        try:
            data = orjson.loads(decrypt_resource(self._apiv3_key, resource))
        except (CertificateError, orjson.JSONDecodeError, TypeError):
            raise NoticeRefused("resource does not decrypt with the APIv3 key") from None
        if not isinstance(data, dict):
            raise NoticeRefused("resource is not an object")
        try:
            self._account.check_named(data)
        except AnswerMismatch as error:
            raise NoticeRefused(f"resource names another merchant: {error}") from None
        try:
            return _notice(event_type, data)
        except (KeyError, TypeError, ValueError):
            raise NoticeRefused(f"{event_type}: resource lacks a field it needs") from None

    def accepted(self) -> web.Response:
        return web.Response(status=204)

    def refused(self, why: str) -> web.Response:
        status = 500 if why == "deferred" else 400
        return web.json_response({"code": "FAIL", "message": why}, status=status)


def _notice(event_type: str, data: dict[str, Any]) -> Notice:
    if event_type.startswith(TRANSACTION):
        return Notice(
            Channel.WECHAT,
            out_trade_no=str(data["out_trade_no"]),
            trade_no=str(data.get("transaction_id", "")),
            amount_fen=int(data["amount"]["total"]),
            trade_status=TRADE_STATES[str(data["trade_state"])],
        )
    if event_type.startswith(REFUND):
        return Notice(
            Channel.WECHAT,
            out_trade_no=str(data["out_trade_no"]),
            trade_no=str(data.get("transaction_id", "")),
            amount_fen=int(data["amount"]["refund"]),
            out_refund_no=str(data["out_refund_no"]),
            refund_no=str(data.get("refund_id", "")),
            refund_status=REFUND_STATUS[str(data["refund_status"])],
        )
    raise ValueError(event_type)


def notification_body(
    apiv3_key: bytes, event_type: str, resource: dict[str, Any], notify_id: str, nonce: str
) -> bytes:
    """What WeChat Pay posts (the sandbox sends this): the resource sealed under the APIv3
    key, its original_type named in associated_data as the real gateway does."""
    original = "refund" if event_type.startswith(REFUND) else "transaction"
    sealed = encrypt_resource(apiv3_key, orjson.dumps(resource), nonce, original)
    envelope = {
        "id": notify_id,
        "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 28800)),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功" if original == "transaction" else "退款成功",
        "resource": {"original_type": original, **sealed},
    }
    return orjson.dumps(envelope)
