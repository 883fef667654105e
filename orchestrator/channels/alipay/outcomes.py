"""What Alipay's answers mean for windowpay (docs/PROVIDERS.md, "Alipay OpenAPI", the
table of answers): each call's verified `*_response` member read into the port's
answers. Pure: the adapter (adapter.py) sends the calls and checks the signatures, and
hands the member here. The final declines of a pay call and the final refusals of a
refund are in declines.py. Anything not listed is an unknown outcome, or a refusal of
the request itself, never a success or a decline."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import time as day_time
from enum import StrEnum
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from orchestrator.channels.alipay.declines import DECLINED, REFUND_DECLINED
from orchestrator.domain.money import from_yuan
from orchestrator.providers.bills import NoTradesThatDay
from orchestrator.providers.port import (
    BillNotReady,
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

BEIJING = ZoneInfo("Asia/Shanghai")

SUCCESS = "10000"
WAITING = "10003"  # the payer is confirming (" order success pay inprocess")
UNKNOWN = "20000"  # 服务不可用: the outcome is not known, ask again
BUSINESS_FAILED = "40004"  # a business refusal, its sub_code says which
SYSTEM_ERROR = "ACQ.SYSTEM_ERROR"  # "请使用相同的参数再次调用": unknown
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
TRADE_HAS_CLOSE = "ACQ.TRADE_HAS_CLOSE"
TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"  # a close of a trade no longer WAIT_BUYER_PAY

# alipay.trade.query's trade_status. TRADE_CLOSED is "closed unpaid, or paid and then
# wholly refunded": either way nothing is kept.
TRADE_STATUS = {
    "TRADE_SUCCESS": TradeStatus.PAID,
    "TRADE_FINISHED": TradeStatus.PAID,  # paid, and past its refund period
    "WAIT_BUYER_PAY": TradeStatus.CONFIRMING,
    "TRADE_CLOSED": TradeStatus.CLOSED,
}
REFUND_SUCCESS = "REFUND_SUCCESS"

# "当日数据一般于次日 9 点前生成": a day's bill is there by 09:00 the next day (Beijing).
BILL_READY = day_time(9, 0)
BILL_NOT_EXIST = "isp.bill_not_exist"


class CloseNext(StrEnum):
    """What a close answer that does not settle the close asks for next."""

    QUERY = "QUERY"  # ACQ.TRADE_STATUS_ERROR: paid or closed already; a query tells
    CANCEL = "CANCEL"  # ACQ.TRADE_NOT_EXIST: never scanned; cancel closes the number


def check_trade(answer: dict[str, Any], trade: TradeRef) -> None:
    """A trade answer counts only for the trade and amount that were asked."""
    check_bound("out_trade_no", trade.out_trade_no, answer.get("out_trade_no"))
    try:
        amount = from_yuan(str(answer.get("total_amount", "")))
    except ValueError:
        amount = -1
    check_bound("total_amount", trade.amount_fen, amount)


def pay_answer(answer: dict[str, Any], trade: TradeRef) -> TradeAnswer:
    """alipay.trade.pay: 10000 paid (for the trade and amount asked), 10003 the payer is
    confirming, else a refusal."""
    code = answer.get("code")
    if code == SUCCESS:
        check_trade(answer, trade)
        return TradeAnswer(TradeStatus.PAID, answer.get("trade_no", ""))
    if code == WAITING:
        check_bound("out_trade_no", trade.out_trade_no, answer.get("out_trade_no"))
        return TradeAnswer(TradeStatus.CONFIRMING, answer.get("trade_no", ""))
    return refusal(answer)


def query_answer(answer: dict[str, Any], trade: TradeRef) -> TradeAnswer:
    """alipay.trade.query: the trade_status of the trade asked, or a refusal."""
    if answer.get("code") == SUCCESS:
        check_trade(answer, trade)
        state = answer.get("trade_status", "")
        status = TRADE_STATUS.get(state)
        if status is None:
            raise OutcomeUnknown(f"unknown trade_status {state!r}")
        return TradeAnswer(status, answer.get("trade_no", ""), state)
    return refusal(answer)


def refusal(answer: dict[str, Any]) -> TradeAnswer:
    """A pay's or query's answer other than a success: no such trade, closed, or a
    decline on the allow-list; anything else fails (fail)."""
    sub_code = str(answer.get("sub_code", ""))
    if answer.get("code") == BUSINESS_FAILED:
        if sub_code == TRADE_NOT_EXIST:
            return TradeAnswer(TradeStatus.NOT_FOUND, reason=sub_code)
        if sub_code == TRADE_HAS_CLOSE:
            return TradeAnswer(TradeStatus.CLOSED, reason=sub_code)
        if sub_code in DECLINED:
            return TradeAnswer(TradeStatus.DECLINED, reason=sub_code)
    fail(answer)


def cancel_answer(answer: dict[str, Any], trade: TradeRef) -> ReverseAnswer:
    """alipay.trade.cancel: retry_flag=Y asks again; 10000 is done (closed or refunded),
    once it names the trade asked (out_trade_no is required in the cancel's answer)."""
    if answer.get("retry_flag") == "Y":
        return ReverseAnswer(ReverseStatus.RETRY, "retry_flag=Y")
    if answer.get("code") == SUCCESS:
        check_bound("out_trade_no", trade.out_trade_no, answer.get("out_trade_no"))
        return ReverseAnswer(ReverseStatus.DONE, f"cancelled ({answer.get('action', '')})")
    fail(answer)


def close_answer(answer: dict[str, Any], trade: TradeRef) -> ReverseAnswer | CloseNext:
    """alipay.trade.close: 10000 closed; ACQ.TRADE_STATUS_ERROR and ACQ.TRADE_NOT_EXIST
    ask for a query or a cancel next (CloseNext); 20000 or ACQ.SYSTEM_ERROR ask again."""
    sub_code = str(answer.get("sub_code", ""))
    if answer.get("code") == SUCCESS:
        check_bound("out_trade_no", trade.out_trade_no, answer.get("out_trade_no"))
        return ReverseAnswer(ReverseStatus.DONE, "closed")
    if sub_code == TRADE_STATUS_ERROR:
        return CloseNext.QUERY
    if sub_code == TRADE_NOT_EXIST:
        return CloseNext.CANCEL
    if answer.get("code") == UNKNOWN or sub_code == SYSTEM_ERROR:
        return ReverseAnswer(ReverseStatus.RETRY, sub_code or UNKNOWN)
    fail(answer)


def not_closable(found: TradeAnswer) -> ReverseAnswer:
    """A close answered ACQ.TRADE_STATUS_ERROR, and the query's answer: paid first,
    closed already, or (still waiting, or no such trade) ask again."""
    if found.status is TradeStatus.PAID:
        return ReverseAnswer(ReverseStatus.PAID, f"{TRADE_STATUS_ERROR}: paid")
    if found.status is TradeStatus.CLOSED:
        return ReverseAnswer(ReverseStatus.DONE, f"closed already ({TRADE_STATUS_ERROR})")
    return ReverseAnswer(ReverseStatus.RETRY, f"{TRADE_STATUS_ERROR}, {found.reason}")


def refund_answer(answer: dict[str, Any], trade: TradeRef) -> RefundAnswer:
    """alipay.trade.refund: fund_change=Y refunded; fund_change=N (also the answer to a
    resend of a refund done before) and any 40004 off the refund allow-list pending,
    for the refund query to tell; a 40004 on it failed, nothing refunded."""
    if answer.get("code") == SUCCESS:
        check_bound("out_trade_no", trade.out_trade_no, answer.get("out_trade_no"))
        if answer.get("fund_change") == "Y":
            return RefundAnswer(RefundStatus.SUCCEEDED, answer.get("trade_no", ""))
        # N: no money moved by this call, which is also the answer to a resend of a
        # refund that went through before. Only the refund query tells.
        return RefundAnswer(RefundStatus.PENDING, reason="fund_change=N")
    sub_code = str(answer.get("sub_code", ""))
    if answer.get("code") == BUSINESS_FAILED and sub_code in REFUND_DECLINED:
        return RefundAnswer(RefundStatus.FAILED, reason=sub_code)
    if answer.get("code") == BUSINESS_FAILED:
        return RefundAnswer(RefundStatus.PENDING, reason=sub_code)
    fail(answer)


def refund_found(
    answer: dict[str, Any], out_trade_no: str, out_request_no: str
) -> tuple[int, str, str] | None:
    """alipay.trade.fastpay.refund.query: (the refund's own amount, its refund_status, the
    trade_no), or None for the documented empty answer (no such refund)."""
    if answer.get("code") != SUCCESS:
        fail(answer)
    if not answer.get("out_request_no") and not answer.get("refund_status"):
        return None  # the documented empty answer
    check_bound("out_request_no", out_request_no, answer.get("out_request_no"))
    if answer.get("out_trade_no"):
        check_bound("out_trade_no", out_trade_no, answer.get("out_trade_no"))
    try:
        amount = from_yuan(str(answer.get("refund_amount", "")))
    except ValueError:
        raise OutcomeUnknown("refund query answered without a refund_amount") from None
    return amount, str(answer.get("refund_status", "")), str(answer.get("trade_no", ""))


def refund_status(found: tuple[int, str, str] | None, refund_fen: int) -> RefundAnswer:
    """The refund query's answer for the refund asked. Under the older contract an answer
    with the refund's data means it went through, REFUND_SUCCESS or no refund_status."""
    if found is None:
        return RefundAnswer(RefundStatus.NOT_FOUND, reason="no such refund")
    amount, status, trade_no = found
    check_bound("refund amount", refund_fen, amount)
    if status in ("", REFUND_SUCCESS):
        return RefundAnswer(RefundStatus.SUCCEEDED, trade_no)
    return RefundAnswer(RefundStatus.PENDING, reason=status)


def qr_code(answer: dict[str, Any], out_trade_no: str) -> str:
    """alipay.trade.precreate: the qr_code of the trade asked."""
    if answer.get("code") != SUCCESS:
        fail(answer)
    check_bound("out_trade_no", out_trade_no, answer.get("out_trade_no"))
    code = answer.get("qr_code")
    if not isinstance(code, str) or not code:
        raise OutcomeUnknown("precreate answered without a qr_code")
    return code


def bill_download_url(answer: dict[str, Any], day: date, now_s: float) -> str:
    """alipay.data.dataservice.bill.downloadurl.query: the URL of the day's bill. The
    gateway answers isp.bill_not_exist both for a day without trades and for a bill not
    made yet; the documented time tells them apart: before 09:00 Beijing time the next
    day BillNotReady (ask again later), after it NoTradesThatDay."""
    if answer.get("sub_code") == BILL_NOT_EXIST:
        ready = datetime.combine(day + timedelta(days=1), BILL_READY, BEIJING)
        if now_s < ready.timestamp():
            raise BillNotReady(
                f"Alipay has no bill of {day} yet; it is made by {ready:%Y-%m-%d %H:%M} "
                "Beijing time: run again then"
            )
        raise NoTradesThatDay(f"Alipay has no bill of {day}: no trades that day")
    if answer.get("code") != SUCCESS:
        fail(answer)
    url = answer.get("bill_download_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise OutcomeUnknown(f"the bill query answered bill_download_url {url!r}")
    return url


def fail(answer: dict[str, Any]) -> NoReturn:
    """An answer that settles nothing: 20000 or ACQ.SYSTEM_ERROR is an unknown outcome
    (ask again), any other a refusal of the request."""
    code, sub_code = str(answer.get("code", "")), str(answer.get("sub_code", ""))
    message = f"{code} {answer.get('msg', '')} {sub_code} {answer.get('sub_msg', '')}".strip()
    if code == UNKNOWN or sub_code == SYSTEM_ERROR:
        raise OutcomeUnknown(message)
    raise ProviderRejected(message)
