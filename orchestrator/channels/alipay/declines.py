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

# A refund's final refusals (alipay.trade.refund's error table): nothing was or will be
# refunded. ACQ.REASON_TRADE_REFUND_FEE_ERR is what the gateway answers a refund that
# carries out_request_no and asks more than is left; ACQ.TRADE_HAS_FINISHED a refund
# asked after the trade's refund period. Anything else is pending and asked again.
REFUND_DECLINED = frozenset(
    {
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        "ACQ.REFUND_FEE_ERROR",
        "ACQ.TRADE_HAS_FINISHED",
        "ACQ.TRADE_NOT_EXIST",
        "ACQ.TRADE_STATUS_ERROR",
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
    }
)

# Not listed on purpose: ACQ.DISCORDANT_REPEAT_REQUEST ("不一致的请求", the refund's
# out_request_no was used before with other content). The earlier refund under that
# number may have gone through, so the refund stays pending and is left for a person:
# the refund-overdue alert and its log line name the reason.
