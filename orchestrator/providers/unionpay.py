"""UnionPay (bank card and UnionPay QR) through the acquirer's back-office gateway, in
the style of the 全渠道 (ACP) form API: sale (消费), query, reversal (冲正), void
(撤销), refund (退货) and the settlement file. Fields are form-encoded; the signature
(signMethod 01) is RSA-SHA256 over the hex SHA-256 digest of the sorted fields, under
the certId of the .pfx signing certificate; answers are verified with their
signPubKeyCert once it chains to the configured root (unionpay_keys.py).

A sale that gets no answer is reversed, not queried (the playbook's no_answer); the
engine records the reversal before it is sent, and the window stays busy until it is
done, so the window's next card sale waits for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, date, datetime
from typing import NoReturn
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import CertificateError
from orchestrator.providers.http import Adapter
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    ProviderUnavailable,
    RefundAnswer,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeStatus,
)
from orchestrator.providers.signing import sign, sorted_pairs, verify
from orchestrator.providers.unionpay_keys import UnionPayKeys

BEIJING = ZoneInfo("Asia/Shanghai")
TRANSACT = "/gateway/api/backTransReq.do"
QUERY = "/gateway/api/queryTrans.do"
FILES = "/gateway/api/fileTransReq.do"
SIGNED_EXCEPT = frozenset({"signature"})

SALE, QUERY_TXN, VOID, REFUND, REVERSAL, SETTLEMENT_FILE = "01", "00", "31", "04", "99", "76"
UNKNOWN_CODES = frozenset({"03", "04", "05"})  # timed out / in progress: ask again
PENDING = "05"
DECLINED = {"51": "insufficient funds", "14": "invalid or expired code", "61": "over limit"}
NOT_FOUND = "34"


def digest_message(fields: dict[str, str]) -> bytes:
    text = sorted_pairs(fields, exclude=SIGNED_EXCEPT)
    return hashlib.sha256(text.encode()).hexdigest().encode()


class UnionPay(Adapter[UnionPayKeys]):
    """Knows the merchant by its merId."""

    channel = Channel.UNIONPAY

    async def pay(self, call: PayCall) -> TradeAnswer:
        fields = await self._call(
            TRANSACT,
            txnType=SALE,
            txnSubType="06",  # payer-presented QR / card code
            orderId=call.out_trade_no,
            txnAmt=str(call.amount_fen),
            currencyCode="156",
            qrNo=call.auth_code,
            termId=call.terminal_id,
            reqReserved=call.store_id,
        )
        return self._outcome(fields["respCode"], fields)

    async def query(self, out_trade_no: str) -> TradeAnswer:
        fields = await self._call(QUERY, txnType=QUERY_TXN, txnSubType="00", orderId=out_trade_no)
        if fields["respCode"] == NOT_FOUND:
            return TradeAnswer(TradeStatus.NOT_FOUND, reason="34 no such transaction")
        if fields["respCode"] != "00":
            _fail(fields)
        if fields.get("origTxnStatus") == "reversed":
            return TradeAnswer(TradeStatus.CLOSED, fields.get("queryId", ""), "reversed")
        return self._outcome(fields.get("origRespCode", ""), fields)

    async def reverse(self, out_trade_no: str) -> ReverseAnswer:
        fields = await self._call(
            TRANSACT, txnType=REVERSAL, txnSubType="01", origOrderId=out_trade_no
        )
        if fields["respCode"] in ("00", NOT_FOUND):  # undone, or nothing to undo
            return ReverseAnswer(ReverseStatus.DONE, "reversal (冲正) done")
        if fields["respCode"] in UNKNOWN_CODES:
            return ReverseAnswer(ReverseStatus.RETRY, fields.get("respMsg", ""))
        _fail(fields)

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int
    ) -> RefundAnswer:
        """A whole sale on its own day is voided (撤销, no fee); otherwise refunded (退货)."""
        if refund_fen == total_fen:
            voided = await self._transact(VOID, out_trade_no, out_refund_no, refund_fen)
            if voided.done:
                return voided
        return await self._transact(REFUND, out_trade_no, out_refund_no, refund_fen)

    async def _transact(
        self, txn_type: str, out_trade_no: str, out_refund_no: str, amount_fen: int
    ) -> RefundAnswer:
        fields = await self._call(
            TRANSACT,
            txnType=txn_type,
            txnSubType="00",
            orderId=out_refund_no,
            origOrderId=out_trade_no,
            txnAmt=str(amount_fen),
        )
        code = fields["respCode"]
        if code == "00":
            return RefundAnswer(
                fields.get("queryId", ""), True, "voided" if txn_type == VOID else ""
            )
        if code in UNKNOWN_CODES:
            raise OutcomeUnknown(f"{out_refund_no}: {fields.get('respMsg', '')}")
        return RefundAnswer("", False, f"{code} {fields.get('respMsg', '')}")

    async def bill(self, day: date) -> bytes:
        """The acquirer's settlement file for the day (every sale, void and refund)."""
        fields = await self._call(
            FILES, txnType=SETTLEMENT_FILE, txnSubType="01", fileType="00",
            settleDate=day.strftime("%m%d"),
        )  # fmt: skip
        if fields["respCode"] != "00":
            _fail(fields)
        try:
            return base64.b64decode(fields["fileContent"], validate=True)
        except (KeyError, binascii.Error):
            raise OutcomeUnknown("settlement file content missing or damaged") from None

    # ---- protocol -------------------------------------------------------------------

    def signed_fields(self, **fields: str) -> dict[str, str]:
        signed = {
            "version": "5.1.0",
            "encoding": "UTF-8",
            "signMethod": "01",
            "bizType": "000000",
            "accessType": "0",
            "channelType": "08",
            "merId": self._merchant_id,
            "certId": self._keys.own_serial,
            "txnTime": datetime.fromtimestamp(self._clock(), BEIJING).strftime("%Y%m%d%H%M%S"),
            **fields,
        }
        signed["signature"] = sign(self._keys.private, digest_message(signed))
        return signed

    async def _call(self, path: str, **fields: str) -> dict[str, str]:
        answer = await self._http.request(
            "POST",
            path,
            body=urlencode(self.signed_fields(**fields)).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
        )
        if answer.status >= 500:
            raise ProviderUnavailable(f"{path} answered HTTP {answer.status}")
        if answer.status != 200:
            raise OutcomeUnknown(f"{path} answered HTTP {answer.status}")
        parsed = dict(parse_qsl(answer.body.decode("utf-8", errors="replace")))
        try:
            key = self._keys.answer_key(parsed, datetime.fromtimestamp(self._clock(), UTC))
        except CertificateError as error:
            raise OutcomeUnknown(f"{path}: answer certificate not trusted: {error}") from None
        if not verify(key, digest_message(parsed), parsed.get("signature", "")):
            raise OutcomeUnknown(f"{path}: answer signature does not verify")
        if "respCode" not in parsed:
            raise OutcomeUnknown(f"{path}: answer has no respCode")
        return parsed

    @staticmethod
    def _outcome(code: str, fields: dict[str, str]) -> TradeAnswer:
        trade_no = fields.get("queryId", "")
        if code == "00":
            return TradeAnswer(TradeStatus.PAID, trade_no)
        if code == PENDING:
            return TradeAnswer(TradeStatus.CONFIRMING, trade_no, "in progress")
        if code in UNKNOWN_CODES:
            raise OutcomeUnknown(f"{code} {fields.get('respMsg', '')}")
        if code in DECLINED:
            return TradeAnswer(TradeStatus.DECLINED, trade_no, f"{code} {DECLINED[code]}")
        _fail(fields)


def _fail(fields: dict[str, str]) -> NoReturn:
    raise ProviderRejected(f"{fields.get('respCode')} {fields.get('respMsg', '')}".strip())
