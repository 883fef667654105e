"""The channels' decline allow-lists and WeChat's answer tables, written out by hand from
the providers' documents (docs/PROVIDERS.md). mutmut mutates code inside functions only,
so it never changes these tables: this file is what fails if a code is added to or
dropped from one (a decline too many takes an unclear payment for a final refusal)."""

from __future__ import annotations

from orchestrator.channels.alipay import declines as alipay
from orchestrator.channels.unionpay import declines as unionpay
from orchestrator.channels.wechat import declines as wechat
from orchestrator.channels.wechat import outcomes
from orchestrator.providers.port import RefundStatus, TradeStatus


def test_wechat_declines() -> None:
    assert set(wechat.DECLINED) == {
        "NOTENOUGH", "AUTHCODEEXPIRE", "AUTH_CODE_INVALID", "PAYER_ACCOUNT_ABNORMAL",
        "TRADE_ERROR",
    }  # fmt: skip
    assert set(wechat.REFUND_DECLINED) == {
        "NOT_ENOUGH", "USER_ACCOUNT_ABNORMAL", "PARAM_ERROR", "INVALID_REQUEST",
        "RESOURCE_NOT_EXISTS", "MCH_NOT_EXISTS", "NO_AUTH",
    }  # fmt: skip
    assert "ORDERPAID" not in wechat.DECLINED and "SYSTEMERROR" not in wechat.DECLINED


def test_alipay_declines() -> None:
    assert set(alipay.DECLINED) == {
        "ACQ.PAYMENT_AUTH_CODE_INVALID", "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH", "ACQ.PAYMENT_FAIL",
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
    }  # fmt: skip
    assert set(alipay.REFUND_DECLINED) == {
        "ACQ.SELLER_BALANCE_NOT_ENOUGH", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "ACQ.TRADE_NOT_EXIST", "ACQ.TRADE_STATUS_ERROR", "ACQ.TRADE_NOT_ALLOW_REFUND",
        "ACQ.REASON_TRADE_BEEN_FREEZEN", "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        "ACQ.REFUND_FEE_ERROR", "ACQ.TRADE_HAS_FINISHED",
    }  # fmt: skip


def test_unionpay_declines() -> None:
    assert sorted(unionpay.DECLINED) == ["33", "61", "63", "64", "65", "73"]
    assert sorted(unionpay.REFUND_DECLINED) == ["31", "33", "35", "36"]


def test_wechat_answer_tables() -> None:
    assert dict(outcomes.TRADE_STATES) == {
        "SUCCESS": TradeStatus.PAID, "REFUND": TradeStatus.PAID,
        "USERPAYING": TradeStatus.CONFIRMING, "NOTPAY": TradeStatus.CONFIRMING,
        "PAYERROR": TradeStatus.DECLINED, "CLOSED": TradeStatus.CLOSED,
        "REVOKED": TradeStatus.CLOSED,
    }  # fmt: skip
    assert dict(outcomes.REFUND_STATUS) == {
        "SUCCESS": RefundStatus.SUCCEEDED, "CLOSED": RefundStatus.FAILED,
        "PROCESSING": RefundStatus.PENDING, "ABNORMAL": RefundStatus.PENDING,
    }  # fmt: skip
    assert set(outcomes.TRY_AGAIN) == {
        "SYSTEM_ERROR",
        "SYSTEMERROR",
        "USERPAYING",
        "FREQUENCY_LIMITED",
    }
    assert set(outcomes.PAY_CLOSED) == {"ORDER_CLOSED", "ORDER_REVERSED"}
    assert set(outcomes.REVERSE_DONE) == {"ORDER_CLOSED"}
    assert set(outcomes.CLOSE_DONE) == {"ORDER_CLOSED", "ORDER_NOT_EXIST"}


def test_a_trade_never_made_is_final_two_code_lives_after_the_pay_call() -> None:
    assert outcomes.never_created_after(60.0) == 120.0
    assert outcomes.never_created_after(3.0) == 6.0
    assert outcomes.never_created_after() == 120.0
    assert outcomes.NEVER_CREATED_AFTER_S == 120.0
