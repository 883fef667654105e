"""What UnionPay ACP's answers mean for windowpay (docs/PROVIDERS.md, "UnionPay ACP",
"Outcomes"): each verified answer's fields read into the port's answers. Pure: the
adapter (adapter.py) sends the calls and checks the signatures, and hands the fields
here with the merchant (merId) and the transaction asked. The final declines of a sale
and the final refusals of a void or refund are in declines.py.

An answer decides only about the transaction asked: before any outcome is taken from
it, it must name the orderId asked and this merId (and, where the kind of answer
decides, its txnType); else it is an AnswerMismatch and says nothing."""

from __future__ import annotations

from typing import NoReturn

from orchestrator.channels.unionpay.declines import DECLINED, REFUND_DECLINED
from orchestrator.providers.port import (
    OutcomeUnknown,
    ProviderRejected,
    RefundAnswer,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
    check_bound,
)

# txnType: 消费, 交易状态查询, 消费撤销, 退货, 冲正, 文件传输
SALE, QUERY_TXN, VOID, REFUND, REVERSAL, SETTLEMENT_FILE = "01", "00", "31", "04", "99", "76"
APPLY_QR = "07"  # a sale's txnSubType when the payer scans the merchant's code (申码)

# ACP's own response codes (not ISO-8583 POS codes).
SUCCESS = "00"
UNKNOWN_CODES = frozenset({"03", "04", "05"})  # timed out / unclear / accepted: ask again
ACCEPTED = "05"
FAILED = "01"  # 交易失败: as an original's state, the transaction did not happen
NOT_FOUND = "34"


def check_names(
    fields: dict[str, str], merchant_id: str, order_id: str, txn_type: str | None = None
) -> None:
    """Before any outcome is taken from a signed answer: it names the orderId asked,
    this merchant and, where the kind of answer decides (a reversal's, a 34's), the
    txnType answered. Else it is about another transaction and says nothing."""
    check_bound("orderId", order_id, fields.get("orderId"))
    check_bound("merId", merchant_id, fields.get("merId"))
    if txn_type is not None:
        check_bound("txnType", txn_type, fields.get("txnType"))


def check_trade(fields: dict[str, str], merchant_id: str, trade: TradeRef) -> None:
    """A trade answer counts only for the orderId, merchant and amount asked."""
    check_names(fields, merchant_id, trade.out_trade_no)
    check_bound("txnAmt", str(trade.amount_fen), fields.get("txnAmt"))


def sale_answer(fields: dict[str, str], merchant_id: str, trade: TradeRef) -> TradeAnswer:
    """A sale's answer: 00 or 05 only accepted (the query confirms it), else outcome()."""
    code = fields["respCode"]
    if code in (SUCCESS, ACCEPTED):
        # Accepted, not yet known to be paid: the query confirms it.
        check_trade(fields, merchant_id, trade)
        return TradeAnswer(TradeStatus.CONFIRMING, fields.get("queryId", ""), "accepted")
    return outcome(code, fields, merchant_id, trade.out_trade_no)


def code_open(fields: dict[str, str], asked_as_code: bool, now_ms: float, until_ms: int) -> bool:
    """A 申码 order (asked so by this process, or named so by its query's txnSubType)
    whose code may still be paid now (before its payTimeout, until_ms)."""
    is_code = asked_as_code or fields.get("txnSubType") == APPLY_QR
    return is_code and now_ms < until_ms


def query_answer(
    fields: dict[str, str], merchant_id: str, trade: TradeRef, open_code: bool
) -> TradeAnswer:
    """交易状态查询: respCode 34 no such transaction (the query's own); 00 found, and
    origRespCode is the sale's state: 00 paid, 05 in progress, 01 failed (a failed try
    while a 申码 code is open: `open_code`), a decline, else outcome()."""
    if fields["respCode"] == NOT_FOUND:
        check_names(fields, merchant_id, trade.out_trade_no, QUERY_TXN)
        return TradeAnswer(TradeStatus.NOT_FOUND, reason="34 no such transaction")
    if fields["respCode"] != SUCCESS:
        fail(fields)
    check_trade(fields, merchant_id, trade)
    code = fields.get("origRespCode", "")
    if code == FAILED and open_code:
        # A failed try at a 申码 code: nothing closes the code before its payTimeout.
        return TradeAnswer(TradeStatus.DECLINED, fields.get("queryId", ""), "01 failed try")
    if code == FAILED:  # failed: reversed, or a 申码 code that ended unpaid
        return TradeAnswer(TradeStatus.CLOSED, fields.get("queryId", ""), "01 failed")
    if code == SUCCESS:
        return TradeAnswer(TradeStatus.PAID, fields.get("queryId", ""))
    if code == ACCEPTED:
        return TradeAnswer(TradeStatus.CONFIRMING, fields.get("queryId", ""), "in progress")
    return outcome(code, fields, merchant_id, trade.out_trade_no)


def reversal_answer(fields: dict[str, str], merchant_id: str, order_id: str) -> ReverseAnswer:
    """冲正: 00 undone, 34 nothing to undo, each only as the reversal's own answer (a
    sale's or a query's 00 or 34 for the same orderId says nothing of it); 03/04/05 ask
    again; anything else fails (the engine asks again, never takes it as done)."""
    if fields["respCode"] in (SUCCESS, NOT_FOUND):  # undone, or nothing to undo
        check_names(fields, merchant_id, order_id, REVERSAL)
        return ReverseAnswer(ReverseStatus.DONE, "reversal (冲正) done")
    if fields["respCode"] in UNKNOWN_CODES:
        return ReverseAnswer(ReverseStatus.RETRY, fields.get("respMsg", ""))
    fail(fields)


def qr_code(fields: dict[str, str], merchant_id: str, trade: TradeRef) -> str:
    """申码's answer: the code (qrCode) of the order and amount asked."""
    if fields["respCode"] != SUCCESS:
        if fields["respCode"] in UNKNOWN_CODES:
            raise OutcomeUnknown(f"{fields['respCode']} {fields.get('respMsg', '')}")
        fail(fields)
    check_trade(fields, merchant_id, trade)
    if not fields.get("qrCode"):
        raise OutcomeUnknown("申码 answered without a qrCode")
    return fields["qrCode"]


def close_answer(answer: TradeAnswer, asked_ms: float, pay_timeout_ms: int) -> ReverseAnswer:
    """A 申码 close, from the query sent at asked_ms: PAID when it was paid; DONE when not
    and the query was sent after the code's payTimeout; RETRY otherwise."""
    if answer.status is TradeStatus.PAID:
        return ReverseAnswer(ReverseStatus.PAID, "paid before its payTimeout")
    if asked_ms < pay_timeout_ms:
        return ReverseAnswer(ReverseStatus.RETRY, "the code's payTimeout has not passed")
    return ReverseAnswer(ReverseStatus.DONE, f"past payTimeout, {answer.status.value}")


def refund_sent(fields: dict[str, str], merchant_id: str, order_id: str) -> RefundAnswer:
    """A void's or refund's answer: 00 accepted (its own query tells when it is done), a
    refusal of declines.py failed, anything else (duplicate, unclear) pending."""
    code = fields["respCode"]
    reason = f"{code} {fields.get('respMsg', '')}".strip()
    if code == SUCCESS:
        # Accepted: the refund's own query tells when it is done.
        check_names(fields, merchant_id, order_id)
        return RefundAnswer(RefundStatus.PENDING, fields.get("queryId", ""), reason)
    if code in REFUND_DECLINED:
        check_names(fields, merchant_id, order_id)
        return RefundAnswer(RefundStatus.FAILED, reason=reason)
    return RefundAnswer(RefundStatus.PENDING, reason=reason)  # duplicate, unclear, unknown


def refund_status(
    fields: dict[str, str], merchant_id: str, order_id: str, refund_fen: int, voided: bool
) -> RefundAnswer:
    """A void's or refund's query (`voided`: the void's): 34 no such refund; 00 found,
    and origRespCode 00 done, a refusal of declines.py failed, else pending."""
    if fields["respCode"] == NOT_FOUND:
        check_names(fields, merchant_id, order_id, QUERY_TXN)
        return RefundAnswer(RefundStatus.NOT_FOUND, reason="34 no such transaction")
    if fields["respCode"] != SUCCESS:
        fail(fields)
    check_names(fields, merchant_id, order_id)
    check_bound("txnAmt", str(refund_fen), fields.get("txnAmt"))
    code = fields.get("origRespCode", "")
    reason = f"{code} {fields.get('origRespMsg', '')}".strip()
    if code == SUCCESS:
        kind = "voided" if voided else "refunded"
        return RefundAnswer(RefundStatus.SUCCEEDED, fields.get("queryId", ""), kind)
    if code in REFUND_DECLINED:
        return RefundAnswer(RefundStatus.FAILED, reason=reason)
    return RefundAnswer(RefundStatus.PENDING, reason=reason)


def outcome(code: str, fields: dict[str, str], merchant_id: str, order_id: str) -> TradeAnswer:
    """A sale's code (or a queried sale's origRespCode) that is neither accepted nor
    paid: a decline of declines.py (for the order asked), 03/04/05 unknown, else fail."""
    if code in DECLINED:
        check_names(fields, merchant_id, order_id)
        return TradeAnswer(
            TradeStatus.DECLINED, fields.get("queryId", ""), f"{code} {DECLINED[code]}"
        )
    if code in UNKNOWN_CODES:
        raise OutcomeUnknown(f"{code} {fields.get('respMsg', '')}")
    fail(fields)


def fail(fields: dict[str, str]) -> NoReturn:
    """Any other answer: a refusal of the request. No caller takes it for an outcome: a
    sale, query or reversal so answered stays unknown (asked again or reversed)."""
    raise ProviderRejected(f"{fields.get('respCode')} {fields.get('respMsg', '')}".strip())
