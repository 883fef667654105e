"""UnionPay ACP backUrl notifications (后台通知): a form POST (so, unlike an answer,
form-decoded) with the same signature as an answer (signMethod 01: RSA-SHA256 over the
hex SHA-256 of all the sorted fields, empty ones included; wire.py), verified with its
signPubKeyCert once that chains to the configured root and intermediate and names
UnionPay's signer (UnionPayKeys.answer_key, as for answers). No certId is needed.

txnType 01 tells a sale's outcome (00 paid, a decline of declines.py declined; any other
code, A6 included, tells nothing and leaves it to the query); 04 (refund) and 31 (void)
a refund's, the void under the refund's number with its "V" (adapter.void_order_id).
ACP gives no sending time to hold against a clock: a replayed notification can only
repeat an outcome the acquirer really signed for that orderId and amount, which
windowpay then finds already recorded.
The answer is HTTP 200 when taken; any other status makes the acquirer send it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from aiohttp import web

from orchestrator.channels.unionpay.declines import DECLINED, REFUND_DECLINED
from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.outcomes import REFUND, SALE, VOID
from orchestrator.channels.unionpay.wire import digest
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import CertificateError
from orchestrator.providers.notices import Notice, NoticeRefused
from orchestrator.providers.port import RefundStatus, TradeStatus
from orchestrator.providers.signing import verify


class UnionPayNotifications:
    channel = Channel.UNIONPAY

    def __init__(
        self, keys: UnionPayKeys, merchant_id: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = keys
        self._merchant_id = merchant_id
        self._clock = clock

    async def verify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NoticeRefused("not UTF-8 text") from None
        fields = dict(parse_qsl(text, keep_blank_values=True))
        if not fields.get("signature"):
            raise NoticeRefused("unsigned: no signature field")
        if fields.get("signMethod") != "01":
            raise NoticeRefused(f"signMethod {fields.get('signMethod')!r} is not 01")
        try:
            key = self._keys.answer_key(fields, datetime.fromtimestamp(self._clock(), UTC))
        except CertificateError as error:
            raise NoticeRefused(f"signPubKeyCert not trusted: {error}") from None
        if not verify(key, digest(fields), fields["signature"]):
            raise NoticeRefused("signature does not verify")
        if fields.get("merId") != self._merchant_id:
            raise NoticeRefused("notification for another merId")
        try:
            return _notice(fields)
        except (KeyError, ValueError):
            raise NoticeRefused("notification lacks a field it needs") from None

    def accepted(self) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    def refused(self, why: str) -> web.Response:
        return web.Response(status=500 if why == "deferred" else 400, text=why)


def _notice(fields: dict[str, str]) -> Notice:
    kind, code, amount = fields["txnType"], fields["respCode"], int(fields["txnAmt"])
    if kind == SALE:
        if code == "00":
            status = TradeStatus.PAID
        elif code in DECLINED:
            status = TradeStatus.DECLINED
        else:
            # 05 (accepted), A6 (有缺陷的成功, which the demos confirm by a query) or
            # another code: UnionPay's own word, but no outcome; the query decides.
            status = TradeStatus.CONFIRMING
        return Notice(
            Channel.UNIONPAY,
            out_trade_no=fields["orderId"],
            trade_no=fields.get("queryId", ""),
            amount_fen=amount,
            trade_status=status,
        )
    if kind in (REFUND, VOID):
        order_id = fields["orderId"]
        refund_no = order_id[:-1] if kind == VOID and order_id.endswith("V") else order_id
        if code == "00":
            refund_status = RefundStatus.SUCCEEDED
        elif code in REFUND_DECLINED and kind == REFUND:
            # A refused void is no refused refund: the adapter refunds instead.
            refund_status = RefundStatus.FAILED
        else:
            refund_status = RefundStatus.PENDING
        return Notice(
            Channel.UNIONPAY,
            out_trade_no="",  # ACP names the sale by its queryId (origQryId) only
            trade_no=fields.get("origQryId", ""),
            amount_fen=amount,
            out_refund_no=refund_no,
            refund_no=fields.get("queryId", ""),
            refund_status=refund_status,
        )
    raise ValueError(f"txnType {kind}")
