"""Alipay's decline allow-lists: the sub_codes that are final (nothing taken or
refunded). Any code not listed leaves the outcome unknown until a query settles it."""

from __future__ import annotations

# The allow-list of a pay call's final declines (nothing taken). Any other refusal,
# ACQ.TRADE_HAS_SUCCESS ("already paid") or an unknown sub_code included, is unknown.
DECLINED = frozenset(
    {
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        "ACQ.PAYMENT_FAIL",
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
    }
)

# A refund's final refusals: nothing was or will be refunded. Anything else is asked again.
REFUND_DECLINED = frozenset(
    {
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "ACQ.TRADE_NOT_EXIST",
        "ACQ.TRADE_STATUS_ERROR",
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
    }
)
