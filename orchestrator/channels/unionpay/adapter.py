"""UnionPay (bank card and UnionPay QR) through the acquirer's back-office gateway, in
the 全渠道 (ACP 5.1.0) form API: sale (消费), 申码 (a code the payer scans), query,
reversal (冲正), void (撤销), refund (退货) and the settlement file. Requests are
form-encoded, blank fields left out; the signature (signMethod 01) is RSA-SHA256 over
the hex SHA-256 digest of the sorted fields, under the certId of the .pfx signing
certificate. Answers are raw `k=v&...` text, read without URL-decoding (wire.py), and
verified with their signPubKeyCert once it chains to the configured root and names
UnionPay's signer (keys.py).

A sale, its query and its reversal name the sale by orderId and the original txnTime;
a void or refund names it by its queryId (origQryId). A sale's respCode 00 only means
accepted: the query confirms it before it counts as paid. A sale that gets no clear
answer (a timeout, 03/04, an unsigned 5xx) is reversed, not queried (the playbook's
no_answer); the engine records the reversal before it is sent, and the window stays
busy until it is done, so the window's next card sale waits for it. What each verified
answer means: outcomes.py.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from orchestrator.channels.unionpay import outcomes
from orchestrator.channels.unionpay.access import DIRECT, Access
from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.outcomes import (
    APPLY_QR,
    QUERY_TXN,
    REFUND,
    REVERSAL,
    SALE,
    SETTLEMENT_FILE,
    VOID,
    fail,
)
from orchestrator.channels.unionpay.wire import (
    AnswerFormatError,
    digest,
    parse_answer,
    without_blanks,
)
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import CertificateError
from orchestrator.providers.http import Adapter, HttpClient
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    QrAnswer,
    QrCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
)
from orchestrator.providers.signing import sign, verify

BEIJING = ZoneInfo("Asia/Shanghai")
TRANSACT = "/gateway/api/backTransReq.do"
QUERY = "/gateway/api/queryTrans.do"
FILES = "/gateway/api/fileTransReq.do"
ORDER_ID = re.compile(r"^[A-Za-z0-9]{8,40}$")

# The longest life a 申码 code is given (payTimeout), so that a close whose code's
# payTimeout this process no longer remembers (after a restart) knows when it has passed.
MAX_CODE_LIFE_MS = 600_000


def txn_time(at_ms: int) -> str:
    """ACP's txnTime (Beijing time, to the second): with orderId it names a transaction."""
    return datetime.fromtimestamp(at_ms / 1000, BEIJING).strftime("%Y%m%d%H%M%S")


SETTLEMENT_DAY_SHIFT = timedelta(hours=1)  # the settlement day ends at 23:00


def shift_of(ends: str) -> timedelta:
    """How far a settlement day that ends at `ends` ("HH:MM", Beijing time) runs ahead of
    the calendar day: "23:00" (UnionPay's) is 1 h, "00:00" the calendar day."""
    try:
        hours, minutes = (int(part) for part in ends.split(":"))
    except ValueError:
        raise ValueError(f"settlement_day_ends {ends!r} is not HH:MM") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"settlement_day_ends {ends!r} is not HH:MM")
    return (timedelta(days=1) - timedelta(hours=hours, minutes=minutes)) % timedelta(days=1)


def settlement_day(at_ms: int) -> date:
    """UnionPay's settlement day (清算日) of a moment: it ends at 23:00 Beijing time."""
    return (datetime.fromtimestamp(at_ms / 1000, BEIJING) + SETTLEMENT_DAY_SHIFT).date()


VOID_SUFFIX = "V"


def void_order_id(out_refund_no: str) -> str:
    """The void tried first for a whole refund has its own orderId, so that the refund
    sent when the void is refused is never taken for a duplicate of it."""
    return f"{out_refund_no}{VOID_SUFFIX}"


class UnionPay(Adapter[UnionPayKeys]):
    """Knows the merchant by its merId."""

    channel = Channel.UNIONPAY

    def __init__(
        self,
        http: HttpClient,
        keys: UnionPayKeys,
        merchant_id: str,
        back_url: str,
        clock: Callable[[], float] = time.time,
        access: Access = DIRECT,
    ) -> None:
        super().__init__(http, keys, merchant_id, clock)
        self._back_url = back_url
        self._access = access
        self._pay_timeouts: dict[str, int] = {}  # 申码 orderId -> its payTimeout (ms)

    async def pay(self, call: PayCall) -> TradeAnswer:
        _check_order_id(call.out_trade_no)
        fields = await self._call(
            TRANSACT,
            txnType=SALE,
            txnSubType="06",  # payer-presented QR / card code
            orderId=call.out_trade_no,
            txnTime=txn_time(call.at_ms),
            txnAmt=str(call.amount_fen),
            currencyCode="156",
            qrNo=call.auth_code,
            termId=call.terminal_id,
            reqReserved=call.store_id,
            backUrl=self._back_url,
        )
        return outcomes.sale_answer(fields, self._merchant_id, call.trade)

    async def query(self, trade: TradeRef) -> TradeAnswer:
        fields = await self._call(
            QUERY,
            txnType=QUERY_TXN,
            txnSubType="00",
            orderId=trade.out_trade_no,
            txnTime=txn_time(trade.at_ms),
        )
        open_code = outcomes.code_open(
            fields,
            trade.out_trade_no in self._pay_timeouts,
            self._clock() * 1000,
            self._pay_timeout_of(trade),
        )
        return outcomes.query_answer(fields, self._merchant_id, trade, open_code)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        """The reversal (冲正) names the original by its orderId and txnTime."""
        fields = await self._call(
            TRANSACT,
            txnType=REVERSAL,
            txnSubType="01",
            orderId=trade.out_trade_no,
            txnTime=txn_time(trade.at_ms),
        )
        return outcomes.reversal_answer(fields, self._merchant_id, trade.out_trade_no)

    async def create_qr(self, call: QrCall) -> QrAnswer:
        """申码: a consumption QR code the payer scans with a UnionPay app (txnType 01,
        txnSubType 07), valid until payTimeout. Its answer is bound like a sale's."""
        _check_order_id(call.out_trade_no)
        pay_timeout_ms = _pay_timeout_ms(call.at_ms, call.expires_at_ms)
        self._forget_codes_over()
        self._pay_timeouts[call.out_trade_no] = pay_timeout_ms
        fields = await self._call(
            TRANSACT,
            txnType=SALE,
            txnSubType=APPLY_QR,
            orderId=call.out_trade_no,
            txnTime=txn_time(call.at_ms),
            txnAmt=str(call.amount_fen),
            currencyCode="156",
            payTimeout=txn_time(pay_timeout_ms),
            termId=call.terminal_id,
            reqReserved=call.store_id,
            backUrl=self._back_url,
        )
        return QrAnswer(outcomes.qr_code(fields, self._merchant_id, call.trade))

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        """ACP documents no close of a 申码 order (its 冲正 is for payer-presented sales):
        the code ends by the payTimeout its request carried. So the close asks the order:
        PAID when it was paid; DONE when it is not, and the query was sent after
        payTimeout; RETRY otherwise. A payment still racing the end is found by the
        engine's follow-up watch and refunded."""
        pay_timeout_ms = self._pay_timeout_of(trade)
        asked_ms = self._clock() * 1000
        closed = outcomes.close_answer(await self.query(trade), asked_ms, pay_timeout_ms)
        if closed.status is ReverseStatus.DONE:
            self._pay_timeouts.pop(trade.out_trade_no, None)
        return closed

    def _pay_timeout_of(self, trade: TradeRef) -> int:
        """The payTimeout the 申码 request carried; after a restart, the latest one it can
        have carried."""
        longest = _pay_timeout_ms(trade.at_ms, trade.at_ms + MAX_CODE_LIFE_MS)
        return self._pay_timeouts.get(trade.out_trade_no, longest)

    def _forget_codes_over(self) -> None:
        """Drop the payTimeouts passed more than twice the longest code life ago: what
        the close would then fall back on (the attempt's start + MAX_CODE_LIFE_MS) has
        passed too, so nothing decides otherwise, and a paid code is not kept forever."""
        long_ago_ms = self._clock() * 1000 - 2 * MAX_CODE_LIFE_MS
        for order_id, pay_timeout_ms in list(self._pay_timeouts.items()):
            if pay_timeout_ms < long_ago_ms:
                del self._pay_timeouts[order_id]

    async def refund(self, call: RefundCall) -> RefundAnswer:
        """A whole sale of the current settlement day is first voided (撤销, no fee); if
        the void is refused, or on a later day, it is refunded (退货). Both name the sale
        by its queryId (origQryId)."""
        _check_order_id(call.out_refund_no)
        if _voids(call):
            voided = await self._transact(VOID, void_order_id(call.out_refund_no), call)
            if voided.status is not RefundStatus.FAILED:
                return voided
        return await self._transact(REFUND, call.out_refund_no, call)

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        if _voids(call):
            voided = await self._refund_status(void_order_id(call.out_refund_no), call)
            if voided.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING):
                return voided
        return await self._refund_status(call.out_refund_no, call)

    async def _transact(self, txn_type: str, order_id: str, call: RefundCall) -> RefundAnswer:
        if not call.trade.trade_no:
            raise ProviderRejected(f"{call.out_refund_no}: the sale's queryId is not known")
        fields = await self._call(
            TRANSACT,
            txnType=txn_type,
            txnSubType="00",
            orderId=order_id,
            txnTime=txn_time(call.at_ms),
            origQryId=call.trade.trade_no,
            txnAmt=str(call.refund_fen),
            backUrl=self._back_url,
        )
        return outcomes.refund_sent(fields, self._merchant_id, order_id)

    async def _refund_status(self, order_id: str, call: RefundCall) -> RefundAnswer:
        fields = await self._call(
            QUERY, txnType=QUERY_TXN, txnSubType="00", orderId=order_id,
            txnTime=txn_time(call.at_ms),
        )  # fmt: skip
        voided = order_id != call.out_refund_no
        return outcomes.refund_status(fields, self._merchant_id, order_id, call.refund_fen, voided)

    async def bill(self, day: date) -> bytes:
        """The day's settlement file (every sale, void and refund), inflated: the zip
        bill.py reads. Through an acquirer UnionPay serves none online (access.py)."""
        if self._access.through_acquirer:
            raise ProviderRejected(
                "UnionPay serves no settlement file online to acquirer access (accessType 1):"
                " reconcile from the acquirer's ACOMN file"
            )
        fields = await self._call(
            FILES, txnType=SETTLEMENT_FILE, txnSubType="01", fileType="00",
            settleDate=day.strftime("%m%d"), txnTime=txn_time(int(self._clock() * 1000)),
        )  # fmt: skip
        if fields["respCode"] != outcomes.SUCCESS:
            fail(fields)
        try:
            # Line breaks in the base64 are no part of it: the SDK's decoder (commons-codec)
            # and the PHP demo's (base64_decode) skip them.
            content = "".join(fields["fileContent"].split())
            return zlib.decompress(base64.b64decode(content, validate=True))
        except (KeyError, binascii.Error, zlib.error):
            raise OutcomeUnknown("settlement file content missing or damaged") from None

    # ---- protocol -------------------------------------------------------------------

    def signed_fields(self, **fields: str) -> dict[str, str]:
        """A request as the SDK sends it: blank fields left out, then signed."""
        signed = {
            "version": "5.1.0",
            "encoding": "UTF-8",
            "signMethod": "01",
            "bizType": "000000",
            "channelType": "08",
            "merId": self._merchant_id,
            **self._access.fields(),
            "certId": self._keys.own_serial,
            **fields,
        }
        signed = without_blanks(signed)
        signed["signature"] = sign(self._keys.private, digest(signed))
        return signed

    async def _call(self, path: str, **fields: str) -> dict[str, str]:
        answer = await self._http.request(
            "POST",
            path,
            body=urlencode(self.signed_fields(**fields)).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        )
        if answer.status != 200:
            # Unsigned, maybe from a proxy in front of a host that did the work.
            raise OutcomeUnknown(f"{path} answered HTTP {answer.status}")
        try:
            # A line break after the last field is no part of it (the SDK's base64
            # decoder would skip it in the signature; a strict one does not).
            parsed = parse_answer(answer.body.decode("utf-8").rstrip("\r\n"))
        except (UnicodeDecodeError, AnswerFormatError) as error:
            raise OutcomeUnknown(f"{path}: answer is not ACP text: {error}") from None
        try:
            key = self._keys.answer_key(parsed, datetime.fromtimestamp(self._clock(), UTC))
        except CertificateError as error:
            raise OutcomeUnknown(f"{path}: answer certificate not trusted: {error}") from None
        if not verify(key, digest(parsed), parsed.get("signature", "")):
            raise OutcomeUnknown(f"{path}: answer signature does not verify")
        if "respCode" not in parsed:
            raise OutcomeUnknown(f"{path}: answer has no respCode")
        return parsed


def _pay_timeout_ms(at_ms: int, expires_at_ms: int) -> int:
    """The payTimeout a 申码 request carries: the code's end, at most MAX_CODE_LIFE_MS
    after the attempt began, rounded up to the second payTimeout is written in (so that
    the code never ends at UnionPay before windowpay stops waiting for it)."""
    end_ms = min(expires_at_ms, at_ms + MAX_CODE_LIFE_MS)
    return -(-end_ms // 1000) * 1000


def _voids(call: RefundCall) -> bool:
    """A void undoes a whole sale, on the settlement day of the sale only (the refund's
    own time decides, so that every resend decides alike)."""
    whole = call.refund_fen == call.trade.amount_fen
    return whole and settlement_day(call.trade.at_ms) == settlement_day(call.at_ms)


def _check_order_id(order_id: str) -> None:
    if not ORDER_ID.match(order_id):
        raise ProviderRejected(f"orderId {order_id!r} is not 8-40 letters or digits")
