"""WeChat Pay's decline allow-lists: the refusals that are final (nothing taken or
refunded). Any code not listed leaves the outcome unknown until a query settles it."""

from __future__ import annotations

# The allow-list of a pay call's final declines (nothing taken). Any other refusal, an
# "already paid" (ORDERPAID) or an unknown code included, leaves the outcome unknown.
DECLINED = frozenset(
    {"NOTENOUGH", "AUTHCODEEXPIRE", "AUTH_CODE_INVALID", "PAYER_ACCOUNT_ABNORMAL", "TRADE_ERROR"}
)

# A refund's final refusals: nothing was or will be refunded. Anything else is asked again.
REFUND_DECLINED = frozenset(
    {"NOT_ENOUGH", "USER_ACCOUNT_ABNORMAL", "PARAM_ERROR", "RESOURCE_NOT_EXISTS", "NO_AUTH"}
)
