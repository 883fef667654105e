"""Alipay's and UnionPay's answer mapping (channels/<name>/outcomes.py), one branch at a
time, with the providers' documented codes (docs/PROVIDERS.md's tables; Alipay's 公共错误码
and the calls' error tables, ACP's 应答码): what is final (paid, declined, closed,
refunded, refused) only on an answer that names the trade asked, and every other
answer unknown or asked again. The adapters' conformance and integration tests run the
same mapping over HTTP; these run it without servers, so that mutmut can."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from orchestrator.channels.alipay import outcomes as alipay
from orchestrator.channels.alipay.declines import DECLINED as ALIPAY_DECLINED
from orchestrator.channels.alipay.declines import REFUND_DECLINED as ALIPAY_REFUND_DECLINED
from orchestrator.channels.alipay.outcomes import CloseNext
from orchestrator.channels.unionpay import outcomes as unionpay
from orchestrator.channels.unionpay.declines import DECLINED as UP_DECLINED
from orchestrator.channels.unionpay.declines import REFUND_DECLINED as UP_REFUND_DECLINED
from orchestrator.providers.bills import NoTradesThatDay
from orchestrator.providers.port import (
    AnswerMismatch,
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
)

# ---- Alipay ---------------------------------------------------------------------------

TRADE = TradeRef("6823789339978248", 8888, 0)
TRADE_NO = "2013112011001004330000121536"


def paid(**extra: Any) -> dict[str, Any]:
    return {
        "code": "10000",
        "msg": "Success",
        "trade_no": TRADE_NO,
        "out_trade_no": TRADE.out_trade_no,
        "total_amount": "88.88",
        **extra,
    }


def business_failed(sub_code: str, code: str = "40004", **extra: Any) -> dict[str, Any]:
    return {"code": code, "msg": "Business Failed", "sub_code": sub_code, **extra}


def test_alipay_pay_10000_is_paid_for_the_trade_and_amount_asked_only() -> None:
    assert alipay.pay_answer(paid(), TRADE) == TradeAnswer(TradeStatus.PAID, TRADE_NO)
    without_no = {k: v for k, v in paid().items() if k != "trade_no"}
    assert alipay.pay_answer(without_no, TRADE) == TradeAnswer(TradeStatus.PAID, "")
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no 'other'"):
        alipay.pay_answer(paid(out_trade_no="other"), TRADE)
    with pytest.raises(AnswerMismatch, match=r"^answer names total_amount 8889, the request 8888"):
        alipay.pay_answer(paid(total_amount="88.89"), TRADE)
    with pytest.raises(AnswerMismatch, match=r"^answer names total_amount -1, the request 8888"):
        alipay.pay_answer(paid(total_amount="not yuan"), TRADE)
    no_amount = {k: v for k, v in paid().items() if k != "total_amount"}
    with pytest.raises(AnswerMismatch, match=r"^answer names total_amount -1,"):
        alipay.pay_answer(no_amount, TRADE)


def test_alipay_pay_10003_is_the_payer_confirming_for_the_trade_asked() -> None:
    waiting = {"code": "10003", "msg": " order success pay inprocess"}
    answer = {**waiting, "out_trade_no": TRADE.out_trade_no, "trade_no": TRADE_NO}
    assert alipay.pay_answer(answer, TRADE) == TradeAnswer(TradeStatus.CONFIRMING, TRADE_NO)
    answer = {**waiting, "out_trade_no": TRADE.out_trade_no}
    assert alipay.pay_answer(answer, TRADE) == TradeAnswer(TradeStatus.CONFIRMING, "")
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no"):
        alipay.pay_answer({**waiting, "out_trade_no": "other"}, TRADE)


@pytest.mark.parametrize("sub_code", sorted(ALIPAY_DECLINED))
def test_alipay_pay_declines_on_the_allow_list_are_final(sub_code: str) -> None:
    answer = alipay.pay_answer(business_failed(sub_code), TRADE)
    assert answer == TradeAnswer(TradeStatus.DECLINED, reason=sub_code)
    with pytest.raises(ProviderRejected):  # only a 40004 declines
        alipay.pay_answer(business_failed(sub_code, code="40003"), TRADE)


def test_alipay_pay_and_query_no_such_trade_and_closed() -> None:
    for read in (alipay.pay_answer, alipay.query_answer):
        not_exist = read(business_failed("ACQ.TRADE_NOT_EXIST"), TRADE)
        assert not_exist == TradeAnswer(TradeStatus.NOT_FOUND, reason="ACQ.TRADE_NOT_EXIST")
        closed = read(business_failed("ACQ.TRADE_HAS_CLOSE"), TRADE)
        assert closed == TradeAnswer(TradeStatus.CLOSED, reason="ACQ.TRADE_HAS_CLOSE")
        for sub_code in ("ACQ.TRADE_NOT_EXIST", "ACQ.TRADE_HAS_CLOSE"):
            with pytest.raises(ProviderRejected):
                read(business_failed(sub_code, code="40003"), TRADE)


def test_alipay_pay_answers_that_settle_nothing() -> None:
    """ "Already paid" (the answer to a resend, the 1212 case) is no decline: the query
    decides. 20000 and ACQ.SYSTEM_ERROR are unknown ("use the same parameters again")."""
    with pytest.raises(ProviderRejected) as refused:
        alipay.pay_answer(business_failed("ACQ.TRADE_HAS_SUCCESS", sub_msg="交易已被支付"), TRADE)
    assert str(refused.value) == "40004 Business Failed ACQ.TRADE_HAS_SUCCESS 交易已被支付"
    with pytest.raises(OutcomeUnknown) as unknown:
        alipay.pay_answer(business_failed("ACQ.SYSTEM_ERROR", sub_msg="系统错误"), TRADE)
    assert str(unknown.value) == "40004 Business Failed ACQ.SYSTEM_ERROR 系统错误"
    with pytest.raises(OutcomeUnknown) as unknown:
        alipay.pay_answer({"code": "20000", "msg": "Service Currently Unavailable"}, TRADE)
    assert str(unknown.value) == "20000 Service Currently Unavailable"
    with pytest.raises(ProviderRejected) as refused:
        alipay.pay_answer({"code": "40002"}, TRADE)
    assert str(refused.value) == "40002"
    assert type(refused.value) is ProviderRejected
    with pytest.raises(ProviderRejected) as refused:
        alipay.pay_answer({}, TRADE)
    assert str(refused.value) == ""


@pytest.mark.parametrize(
    ("trade_status", "status"),
    [
        ("TRADE_SUCCESS", TradeStatus.PAID),
        ("TRADE_FINISHED", TradeStatus.PAID),
        ("WAIT_BUYER_PAY", TradeStatus.CONFIRMING),
        ("TRADE_CLOSED", TradeStatus.CLOSED),
    ],
)
def test_alipay_query_trade_status(trade_status: str, status: TradeStatus) -> None:
    answer = alipay.query_answer(paid(trade_status=trade_status), TRADE)
    assert answer == TradeAnswer(status, TRADE_NO, trade_status)
    without_no = {k: v for k, v in paid(trade_status=trade_status).items() if k != "trade_no"}
    assert alipay.query_answer(without_no, TRADE) == TradeAnswer(status, "", trade_status)
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no"):
        alipay.query_answer(paid(trade_status=trade_status, out_trade_no="other"), TRADE)
    with pytest.raises(AnswerMismatch, match=r"^answer names total_amount"):
        alipay.query_answer(paid(trade_status=trade_status, total_amount="1.00"), TRADE)


def test_alipay_query_an_undocumented_or_missing_trade_status_is_unknown() -> None:
    with pytest.raises(OutcomeUnknown, match=r"^unknown trade_status 'TRADE_PENDING'$"):
        alipay.query_answer(paid(trade_status="TRADE_PENDING"), TRADE)
    with pytest.raises(OutcomeUnknown, match=r"^unknown trade_status ''$"):
        alipay.query_answer(paid(), TRADE)
    with pytest.raises(OutcomeUnknown):
        alipay.query_answer(business_failed("ACQ.SYSTEM_ERROR"), TRADE)
    with pytest.raises(ProviderRejected):  # 10003 is no query answer
        alipay.query_answer({**paid(trade_status="TRADE_SUCCESS"), "code": "10003"}, TRADE)


def test_alipay_cancel() -> None:
    retry = business_failed("ACQ.SYSTEM_ERROR", retry_flag="Y")
    assert alipay.cancel_answer(retry, TRADE) == ReverseAnswer(ReverseStatus.RETRY, "retry_flag=Y")
    retry = {**paid(), "retry_flag": "Y", "action": "close"}
    assert alipay.cancel_answer(retry, TRADE) == ReverseAnswer(ReverseStatus.RETRY, "retry_flag=Y")
    closed = {"code": "10000", "out_trade_no": TRADE.out_trade_no, "retry_flag": "N"}
    for action in ("close", "refund"):
        answer = alipay.cancel_answer({**closed, "action": action}, TRADE)
        assert answer == ReverseAnswer(ReverseStatus.DONE, f"cancelled ({action})")
    assert alipay.cancel_answer(closed, TRADE) == ReverseAnswer(ReverseStatus.DONE, "cancelled ()")
    # out_trade_no is required in the cancel's answer: one that names another trade, or
    # none, is not this trade's reversal.
    bare = {"code": "10000", "retry_flag": "N", "action": "close"}
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no None"):
        alipay.cancel_answer(bare, TRADE)
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no 'other'"):
        alipay.cancel_answer({**closed, "out_trade_no": "other"}, TRADE)
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no None"):
        alipay.cancel_answer({**closed, "out_trade_no": None}, TRADE)
    with pytest.raises(OutcomeUnknown):
        alipay.cancel_answer(business_failed("ACQ.SYSTEM_ERROR", retry_flag="N"), TRADE)
    with pytest.raises(ProviderRejected):
        alipay.cancel_answer(business_failed("ACQ.TRADE_CANCEL_TIME_OUT", retry_flag="N"), TRADE)


def test_alipay_close() -> None:
    done = {"code": "10000", "msg": "Success", "out_trade_no": TRADE.out_trade_no}
    assert alipay.close_answer(done, TRADE) == ReverseAnswer(ReverseStatus.DONE, "closed")
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no"):
        alipay.close_answer({**done, "out_trade_no": "other"}, TRADE)
    status_error = business_failed("ACQ.TRADE_STATUS_ERROR")
    assert alipay.close_answer(status_error, TRADE) is CloseNext.QUERY
    assert alipay.close_answer(business_failed("ACQ.TRADE_NOT_EXIST"), TRADE) is CloseNext.CANCEL
    unknown = {"code": "20000", "msg": "Service Currently Unavailable"}
    assert alipay.close_answer(unknown, TRADE) == ReverseAnswer(ReverseStatus.RETRY, "20000")
    unknown = business_failed("isp.unknow-error", code="20000")
    expected = ReverseAnswer(ReverseStatus.RETRY, "isp.unknow-error")
    assert alipay.close_answer(unknown, TRADE) == expected
    system_error = business_failed("ACQ.SYSTEM_ERROR")
    expected = ReverseAnswer(ReverseStatus.RETRY, "ACQ.SYSTEM_ERROR")
    assert alipay.close_answer(system_error, TRADE) == expected
    with pytest.raises(ProviderRejected):
        alipay.close_answer(business_failed("ACQ.INVALID_PARAMETER"), TRADE)


def test_alipay_a_close_that_is_refused_asks_the_trade() -> None:
    paid_first = alipay.not_closable(TradeAnswer(TradeStatus.PAID, TRADE_NO))
    assert paid_first == ReverseAnswer(ReverseStatus.PAID, "ACQ.TRADE_STATUS_ERROR: paid")
    closed = alipay.not_closable(TradeAnswer(TradeStatus.CLOSED, reason="TRADE_CLOSED"))
    assert closed == ReverseAnswer(ReverseStatus.DONE, "closed already (ACQ.TRADE_STATUS_ERROR)")
    for status, reason in (
        (TradeStatus.CONFIRMING, "WAIT_BUYER_PAY"),
        (TradeStatus.NOT_FOUND, "ACQ.TRADE_NOT_EXIST"),
        (TradeStatus.DECLINED, "ACQ.PAYMENT_FAIL"),
    ):
        answer = alipay.not_closable(TradeAnswer(status, reason=reason))
        assert answer == ReverseAnswer(ReverseStatus.RETRY, f"ACQ.TRADE_STATUS_ERROR, {reason}")


def test_alipay_refund() -> None:
    done = {"code": "10000", "out_trade_no": TRADE.out_trade_no, "trade_no": TRADE_NO}
    refunded = alipay.refund_answer({**done, "fund_change": "Y"}, TRADE)
    assert refunded == RefundAnswer(RefundStatus.SUCCEEDED, TRADE_NO)
    refunded = alipay.refund_answer({"code": "10000", "out_trade_no": TRADE.out_trade_no,
                                     "fund_change": "Y"}, TRADE)  # fmt: skip
    assert refunded == RefundAnswer(RefundStatus.SUCCEEDED, "")
    resent = alipay.refund_answer({**done, "fund_change": "N"}, TRADE)
    assert resent == RefundAnswer(RefundStatus.PENDING, reason="fund_change=N")
    assert alipay.refund_answer(done, TRADE) == resent
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no"):
        alipay.refund_answer({**done, "fund_change": "Y", "out_trade_no": "other"}, TRADE)


@pytest.mark.parametrize("sub_code", sorted(ALIPAY_REFUND_DECLINED))
def test_alipay_refund_refusals_on_the_allow_list_are_final(sub_code: str) -> None:
    answer = alipay.refund_answer(business_failed(sub_code), TRADE)
    assert answer == RefundAnswer(RefundStatus.FAILED, reason=sub_code)
    with pytest.raises(ProviderRejected):  # only a 40004 refuses
        alipay.refund_answer(business_failed(sub_code, code="40003"), TRADE)


def test_alipay_any_other_refund_refusal_is_pending() -> None:
    for sub_code in ("ACQ.DISCORDANT_REPEAT_REQUEST", "ACQ.SYSTEM_ERROR"):
        answer = alipay.refund_answer(business_failed(sub_code), TRADE)
        assert answer == RefundAnswer(RefundStatus.PENDING, reason=sub_code)
    answer = alipay.refund_answer({"code": "40004"}, TRADE)
    assert answer == RefundAnswer(RefundStatus.PENDING, reason="")
    with pytest.raises(OutcomeUnknown):
        alipay.refund_answer({"code": "20000"}, TRADE)
    with pytest.raises(ProviderRejected):
        alipay.refund_answer({"code": "40002", "sub_code": "isv.invalid-signature"}, TRADE)


def test_alipay_refund_query() -> None:
    asked = (TRADE.out_trade_no, "R1")
    empty = {"code": "10000", "msg": "Success"}
    assert alipay.refund_found(empty, *asked) is None
    full = {
        **empty,
        "out_trade_no": TRADE.out_trade_no,
        "out_request_no": "R1",
        "refund_amount": "12.00",
        "refund_status": "REFUND_SUCCESS",
        "trade_no": TRADE_NO,
    }
    assert alipay.refund_found(full, *asked) == (1200, "REFUND_SUCCESS", TRADE_NO)
    older = {k: v for k, v in full.items() if k not in ("refund_status", "trade_no")}
    assert alipay.refund_found(older, *asked) == (1200, "", "")
    no_trade = {k: v for k, v in full.items() if k != "out_trade_no"}
    assert alipay.refund_found(no_trade, *asked) == (1200, "REFUND_SUCCESS", TRADE_NO)
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no"):
        alipay.refund_found({**full, "out_trade_no": "other"}, *asked)
    with pytest.raises(AnswerMismatch, match=r"^answer names out_request_no 'R2'"):
        alipay.refund_found({**full, "out_request_no": "R2"}, *asked)
    status_only = {**empty, "refund_status": "REFUND_SUCCESS", "refund_amount": "12.00"}
    with pytest.raises(AnswerMismatch, match=r"^answer names out_request_no None"):
        alipay.refund_found(status_only, *asked)
    no_amount = {k: v for k, v in full.items() if k != "refund_amount"}
    with pytest.raises(OutcomeUnknown, match=r"^refund query answered without a refund_amount$"):
        alipay.refund_found(no_amount, *asked)
    with pytest.raises(OutcomeUnknown):
        alipay.refund_found({"code": "20000"}, *asked)
    with pytest.raises(ProviderRejected):
        alipay.refund_found(business_failed("ACQ.TRADE_NOT_EXIST"), *asked)


def test_alipay_refund_status() -> None:
    assert alipay.refund_status(None, 1200) == RefundAnswer(
        RefundStatus.NOT_FOUND, reason="no such refund"
    )
    for status in ("", "REFUND_SUCCESS"):
        answer = alipay.refund_status((1200, status, TRADE_NO), 1200)
        assert answer == RefundAnswer(RefundStatus.SUCCEEDED, TRADE_NO)
    answer = alipay.refund_status((1200, "REFUND_PROCESSING", TRADE_NO), 1200)
    assert answer == RefundAnswer(RefundStatus.PENDING, reason="REFUND_PROCESSING")
    with pytest.raises(AnswerMismatch, match=r"^answer names refund amount 1200, the request 1100"):
        alipay.refund_status((1200, "REFUND_SUCCESS", TRADE_NO), 1100)


def test_alipay_precreate() -> None:
    made = {"code": "10000", "out_trade_no": TRADE.out_trade_no, "qr_code": "https://qr/x"}
    assert alipay.qr_code(made, TRADE.out_trade_no) == "https://qr/x"
    with pytest.raises(AnswerMismatch, match=r"^answer names out_trade_no"):
        alipay.qr_code(made, "other")
    for code in (None, "", 7):
        with pytest.raises(OutcomeUnknown, match=r"^precreate answered without a qr_code$"):
            alipay.qr_code({**made, "qr_code": code}, TRADE.out_trade_no)
    with pytest.raises(OutcomeUnknown):
        alipay.qr_code(business_failed("ACQ.SYSTEM_ERROR"), TRADE.out_trade_no)
    with pytest.raises(ProviderRejected):
        alipay.qr_code(business_failed("ACQ.TOTAL_FEE_EXCEED"), TRADE.out_trade_no)


def test_alipay_bill_url_and_a_bill_not_made_yet() -> None:
    day = date(2026, 12, 7)
    ready = datetime(2026, 12, 8, 9, 0, tzinfo=alipay.BEIJING).timestamp()
    missing = business_failed("isp.bill_not_exist")
    with pytest.raises(BillNotReady) as early:
        alipay.bill_download_url(missing, day, ready - 1)
    assert str(early.value) == (
        "Alipay has no bill of 2026-12-07 yet; it is made by 2026-12-08 09:00 Beijing time: "
        "run again then"
    )
    for now in (ready, ready + 1):
        with pytest.raises(NoTradesThatDay) as none:
            alipay.bill_download_url(missing, day, now)
        assert str(none.value) == "Alipay has no bill of 2026-12-07: no trades that day"
    url = {"code": "10000", "bill_download_url": "https://dwbillcenter/x?fileId=%2Fa"}
    assert alipay.bill_download_url(url, day, ready) == "https://dwbillcenter/x?fileId=%2Fa"
    plain = {"code": "10000", "bill_download_url": "http://bills/x"}
    assert alipay.bill_download_url(plain, day, ready) == "http://bills/x"
    for bad in ("ftp://bills/x", None, 3):
        with pytest.raises(OutcomeUnknown) as unknown:
            alipay.bill_download_url({"code": "10000", "bill_download_url": bad}, day, ready)
        assert str(unknown.value) == f"the bill query answered bill_download_url {bad!r}"
    with pytest.raises(ProviderRejected):
        alipay.bill_download_url(business_failed("isv.invalid-bill-date"), day, ready)


# ---- UnionPay -------------------------------------------------------------------------

MER = "777290058110048"
SALE = TradeRef("P0000000000000001", 100, 0)
QUERY_ID = "442401051450467846498"


def acp(resp_code: str, **fields: str) -> dict[str, str]:
    """An ACP answer about SALE, as the adapter hands it over (already verified)."""
    return {
        "respCode": resp_code,
        "respMsg": "成功[0000000]" if resp_code == "00" else "失败",
        "orderId": SALE.out_trade_no,
        "merId": MER,
        "txnAmt": "100",
        **fields,
    }


def without(fields: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k not in names}


def test_unionpay_a_sale_accepted_is_only_confirming() -> None:
    """ "00" to a sale is 受理成功: the query confirms it before it counts as paid."""
    for code in ("00", "05"):
        answer = unionpay.sale_answer(acp(code, queryId=QUERY_ID), MER, SALE)
        assert answer == TradeAnswer(TradeStatus.CONFIRMING, QUERY_ID, "accepted")
        answer = unionpay.sale_answer(acp(code), MER, SALE)
        assert answer == TradeAnswer(TradeStatus.CONFIRMING, "", "accepted")
        with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
            unionpay.sale_answer(acp(code, orderId="P0000000000000002"), MER, SALE)
        with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
            unionpay.sale_answer(acp(code), "777290058110049", SALE)
        with pytest.raises(AnswerMismatch, match=r"^answer names txnAmt '101', the request '100'"):
            unionpay.sale_answer(acp(code, txnAmt="101"), MER, SALE)


@pytest.mark.parametrize("code", sorted(UP_DECLINED))
def test_unionpay_sale_declines_on_the_allow_list_are_final_for_the_order_asked(
    code: str,
) -> None:
    answer = unionpay.sale_answer(acp(code, queryId=QUERY_ID), MER, SALE)
    assert answer == TradeAnswer(TradeStatus.DECLINED, QUERY_ID, f"{code} {UP_DECLINED[code]}")
    assert unionpay.sale_answer(acp(code), MER, SALE).trade_no == ""
    with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
        unionpay.sale_answer(acp(code, orderId="P0000000000000002"), MER, SALE)
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.sale_answer(acp(code, merId="777290058110049"), MER, SALE)


def test_unionpay_sale_answers_that_settle_nothing() -> None:
    """03 交易通讯超时 and 04 交易状态未明 are unknown; 06 系统繁忙, 12 重复交易, A6 有缺陷的成功
    and any other code refuse the request, which the engine takes as no answer either."""
    for code, message in (("03", "交易通讯超时，请发起查询交易"), ("04", "交易状态未明")):
        with pytest.raises(OutcomeUnknown) as unknown:
            unionpay.sale_answer(acp(code, respMsg=message), MER, SALE)
        assert str(unknown.value) == f"{code} {message}"
        with pytest.raises(OutcomeUnknown) as unknown:
            unionpay.sale_answer(without(acp(code), "respMsg"), MER, SALE)
        assert str(unknown.value) == f"{code} "
    for code in ("06", "12", "A6", "99"):
        with pytest.raises(ProviderRejected) as refused:
            unionpay.sale_answer(acp(code, respMsg="系统繁忙"), MER, SALE)
        assert str(refused.value) == f"{code} 系统繁忙"
        assert type(refused.value) is ProviderRejected
        with pytest.raises(ProviderRejected) as refused:
            unionpay.sale_answer(without(acp(code), "respMsg"), MER, SALE)
        assert str(refused.value) == code


def test_unionpay_a_sale_or_code_open_until_its_pay_timeout() -> None:
    sale, code = acp("00", txnSubType="06"), acp("00", txnSubType="07")
    assert unionpay.code_open(sale, True, 999, 1000)
    assert not unionpay.code_open(sale, True, 1000, 1000)
    assert not unionpay.code_open(sale, False, 999, 1000)
    assert unionpay.code_open(code, False, 999, 1000)
    assert not unionpay.code_open(code, False, 1000, 1000)
    assert not unionpay.code_open(without(code, "txnSubType"), False, 0, 1000)


@pytest.mark.parametrize(
    ("orig", "open_code", "expected"),
    [
        ("00", False, TradeAnswer(TradeStatus.PAID, QUERY_ID)),
        ("00", True, TradeAnswer(TradeStatus.PAID, QUERY_ID)),
        ("05", False, TradeAnswer(TradeStatus.CONFIRMING, QUERY_ID, "in progress")),
        ("01", False, TradeAnswer(TradeStatus.CLOSED, QUERY_ID, "01 failed")),
        ("01", True, TradeAnswer(TradeStatus.DECLINED, QUERY_ID, "01 failed try")),
        ("64", False, TradeAnswer(TradeStatus.DECLINED, QUERY_ID, "64 insufficient balance")),
    ],
)
def test_unionpay_query_the_sales_state(orig: str, open_code: bool, expected: TradeAnswer) -> None:
    found = acp("00", origRespCode=orig, queryId=QUERY_ID)
    assert unionpay.query_answer(found, MER, SALE, open_code) == expected
    expected_without_id = TradeAnswer(expected.status, "", expected.reason)
    answer = unionpay.query_answer(without(found, "queryId"), MER, SALE, open_code)
    assert answer == expected_without_id
    with pytest.raises(AnswerMismatch, match=r"^answer names txnAmt"):
        unionpay.query_answer({**found, "txnAmt": "1"}, MER, SALE, open_code)
    with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
        unionpay.query_answer({**found, "orderId": "P0000000000000002"}, MER, SALE, open_code)
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.query_answer(found, "777290058110049", SALE, open_code)


def test_unionpay_query_no_such_transaction_is_the_querys_own_34() -> None:
    not_found = acp("34", txnType="00")
    answer = unionpay.query_answer(not_found, MER, SALE, False)
    assert answer == TradeAnswer(TradeStatus.NOT_FOUND, reason="34 no such transaction")
    with pytest.raises(AnswerMismatch, match=r"^answer names txnType '01', the request '00'"):
        unionpay.query_answer({**not_found, "txnType": "01"}, MER, SALE, False)
    with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
        unionpay.query_answer({**not_found, "orderId": "P0000000000000002"}, MER, SALE, False)
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.query_answer(not_found, "777290058110049", SALE, False)


def test_unionpay_query_answers_that_settle_nothing() -> None:
    for orig in ("03", "04"):
        with pytest.raises(OutcomeUnknown):
            unionpay.query_answer(acp("00", origRespCode=orig), MER, SALE, False)
    for orig in ("A6", "12", ""):
        with pytest.raises(ProviderRejected):
            unionpay.query_answer(acp("00", origRespCode=orig), MER, SALE, False)
    with pytest.raises(ProviderRejected):
        unionpay.query_answer(without(acp("00"), "origRespCode"), MER, SALE, False)
    for code in ("03", "04", "05", "06", "37"):  # the query itself not answered
        with pytest.raises(ProviderRejected) as refused:
            unionpay.query_answer(acp(code, origRespCode="00"), MER, SALE, False)
        assert str(refused.value) == f"{code} 失败"


def test_unionpay_a_reversal_is_done_only_by_its_own_answer() -> None:
    for code in ("00", "34"):
        answer = unionpay.reversal_answer(acp(code, txnType="99"), MER, SALE.out_trade_no)
        assert answer == ReverseAnswer(ReverseStatus.DONE, "reversal (冲正) done")
        with pytest.raises(AnswerMismatch, match=r"^answer names txnType '01', the request '99'"):
            unionpay.reversal_answer(acp(code, txnType="01"), MER, SALE.out_trade_no)
        with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
            unionpay.reversal_answer(acp(code, txnType="99"), MER, "P0000000000000002")
        with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
            unionpay.reversal_answer(acp(code, txnType="99"), "777290058110049", SALE.out_trade_no)


def test_unionpay_a_reversal_unclear_or_refused_is_never_done() -> None:
    for code in ("03", "04", "05"):
        answer = unionpay.reversal_answer(acp(code, respMsg="交易状态未明"), MER, "x")
        assert answer == ReverseAnswer(ReverseStatus.RETRY, "交易状态未明")
        answer = unionpay.reversal_answer(without(acp(code), "respMsg"), MER, "x")
        assert answer == ReverseAnswer(ReverseStatus.RETRY, "")
    for code in ("06", "12", "35", "99"):
        with pytest.raises(ProviderRejected):
            unionpay.reversal_answer(acp(code, txnType="99"), MER, SALE.out_trade_no)


def test_unionpay_apply_qr() -> None:
    made = acp("00", qrCode="https://qr.95516.com/00010000/01234")
    assert unionpay.qr_code(made, MER, SALE) == "https://qr.95516.com/00010000/01234"
    with pytest.raises(AnswerMismatch, match=r"^answer names txnAmt"):
        unionpay.qr_code({**made, "txnAmt": "99"}, MER, SALE)
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.qr_code(made, "777290058110049", SALE)
    for code in ("", None):
        fields = {**made, "qrCode": code} if code is not None else without(made, "qrCode")
        with pytest.raises(OutcomeUnknown, match=r"^申码 answered without a qrCode$"):
            unionpay.qr_code(fields, MER, SALE)
    for code in ("03", "04", "05"):
        with pytest.raises(OutcomeUnknown) as unknown:
            unionpay.qr_code(acp(code, respMsg="稍后查询"), MER, SALE)
        assert str(unknown.value) == f"{code} 稍后查询"
        with pytest.raises(OutcomeUnknown) as unknown:
            unionpay.qr_code(without(acp(code), "respMsg"), MER, SALE)
        assert str(unknown.value) == f"{code} "
    with pytest.raises(ProviderRejected):
        unionpay.qr_code(acp("12"), MER, SALE)


def test_unionpay_a_code_closes_only_past_its_pay_timeout_unless_paid() -> None:
    paid_answer = TradeAnswer(TradeStatus.PAID, QUERY_ID)
    for asked in (999, 1000, 2000):
        answer = unionpay.close_answer(paid_answer, asked, 1000)
        assert answer == ReverseAnswer(ReverseStatus.PAID, "paid before its payTimeout")
    for unpaid in (TradeStatus.CONFIRMING, TradeStatus.CLOSED, TradeStatus.NOT_FOUND):
        answer = unionpay.close_answer(TradeAnswer(unpaid), 999, 1000)
        assert answer == ReverseAnswer(ReverseStatus.RETRY, "the code's payTimeout has not passed")
        for asked in (1000, 2000):
            answer = unionpay.close_answer(TradeAnswer(unpaid), asked, 1000)
            assert answer == ReverseAnswer(ReverseStatus.DONE, f"past payTimeout, {unpaid.value}")


def test_unionpay_a_void_or_refund_sent() -> None:
    order_id = "R0000000000000001"
    accepted = acp("00", orderId=order_id, queryId=QUERY_ID)
    answer = unionpay.refund_sent(accepted, MER, order_id)
    assert answer == RefundAnswer(RefundStatus.PENDING, QUERY_ID, "00 成功[0000000]")
    answer = unionpay.refund_sent(without(accepted, "queryId", "respMsg"), MER, order_id)
    assert answer == RefundAnswer(RefundStatus.PENDING, "", "00")
    with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
        unionpay.refund_sent(accepted, MER, "R0000000000000002")
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.refund_sent(accepted, "777290058110049", order_id)
    for code in sorted(UP_REFUND_DECLINED):
        refused = acp(code, orderId=order_id, respMsg="原交易不存在或状态不正确")
        answer = unionpay.refund_sent(refused, MER, order_id)
        assert answer == RefundAnswer(
            RefundStatus.FAILED, reason=f"{code} 原交易不存在或状态不正确"
        )
        with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
            unionpay.refund_sent(refused, MER, "R0000000000000002")
        with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
            unionpay.refund_sent(refused, "777290058110049", order_id)
    for code in ("12", "03", "04", "05", "06"):  # duplicate, unclear: its query tells
        unclear = acp(code, orderId="elsewhere", respMsg="重复交易")
        answer = unionpay.refund_sent(unclear, MER, order_id)
        assert answer == RefundAnswer(RefundStatus.PENDING, reason=f"{code} 重复交易")
        answer = unionpay.refund_sent(without(unclear, "respMsg"), MER, order_id)
        assert answer == RefundAnswer(RefundStatus.PENDING, reason=code)


def test_unionpay_a_void_or_refund_asked() -> None:
    order_id = "R0000000000000001"
    found = acp("00", orderId=order_id, txnAmt="40", queryId=QUERY_ID, origRespCode="00")
    for voided, kind in ((True, "voided"), (False, "refunded")):
        answer = unionpay.refund_status(found, MER, order_id, 40, voided)
        assert answer == RefundAnswer(RefundStatus.SUCCEEDED, QUERY_ID, kind)
    answer = unionpay.refund_status(without(found, "queryId"), MER, order_id, 40, False)
    assert answer == RefundAnswer(RefundStatus.SUCCEEDED, "", "refunded")
    with pytest.raises(AnswerMismatch, match=r"^answer names txnAmt '40', the request '41'"):
        unionpay.refund_status(found, MER, order_id, 41, False)
    with pytest.raises(AnswerMismatch, match=r"^answer names orderId"):
        unionpay.refund_status(found, MER, "R0000000000000002", 40, False)
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.refund_status(found, "777290058110049", order_id, 40, False)
    for code in sorted(UP_REFUND_DECLINED):
        refused = {**found, "origRespCode": code, "origRespMsg": "与原交易信息不符"}
        answer = unionpay.refund_status(refused, MER, order_id, 40, False)
        assert answer == RefundAnswer(RefundStatus.FAILED, reason=f"{code} 与原交易信息不符")
    pending = {**found, "origRespCode": "05", "origRespMsg": "交易已受理"}
    answer = unionpay.refund_status(pending, MER, order_id, 40, False)
    assert answer == RefundAnswer(RefundStatus.PENDING, reason="05 交易已受理")
    answer = unionpay.refund_status(without(found, "origRespCode"), MER, order_id, 40, False)
    assert answer == RefundAnswer(RefundStatus.PENDING, reason="")


def test_unionpay_a_void_or_refund_not_found_is_the_querys_own_34() -> None:
    order_id = "R0000000000000001"
    not_found = acp("34", orderId=order_id, txnType="00")
    answer = unionpay.refund_status(not_found, MER, order_id, 40, False)
    assert answer == RefundAnswer(RefundStatus.NOT_FOUND, reason="34 no such transaction")
    with pytest.raises(AnswerMismatch, match=r"^answer names txnType '04'"):
        unionpay.refund_status({**not_found, "txnType": "04"}, MER, order_id, 40, False)
    with pytest.raises(AnswerMismatch, match=r"^answer names merId"):
        unionpay.refund_status(not_found, "777290058110049", order_id, 40, False)
    for code in ("03", "06"):
        with pytest.raises(ProviderRejected):
            unionpay.refund_status(acp(code, orderId=order_id), MER, order_id, 40, False)
