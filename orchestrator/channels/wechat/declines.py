"""WeChat Pay's decline allow-lists: the refusals that are final (nothing taken or
refunded). Any code not listed leaves the outcome unknown until a query settles it."""

from __future__ import annotations

# The allow-list of a pay call's final declines (nothing taken). Any other refusal, an
# "already paid" (ORDERPAID) or an unknown code included, leaves the outcome unknown.
DECLINED = frozenset(
    {"NOTENOUGH", "AUTHCODEEXPIRE", "AUTH_CODE_INVALID", "PAYER_ACCOUNT_ABNORMAL", "TRADE_ERROR"}
)

# A refund's documented business refusals (申请退款, 错误码): nothing was refunded.
# INVALID_REQUEST covers "more than is refundable" and "already fully refunded". Any 4xx
# refusal (these or another code) is final once the refund's own query confirms that no
# refund exists under its number; 401, 429, 5xx and a "try again" code (SYSTEM_ERROR,
# FREQUENCY_LIMITED) whatever its status are asked again (adapter.py).
REFUND_DECLINED = frozenset(
    {
        "NOT_ENOUGH",
        "USER_ACCOUNT_ABNORMAL",
        "PARAM_ERROR",
        "INVALID_REQUEST",
        "RESOURCE_NOT_EXISTS",
        "MCH_NOT_EXISTS",
        "NO_AUTH",
    }
)
