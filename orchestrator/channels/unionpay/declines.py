"""UnionPay ACP's decline allow-lists: the respCodes that are final (nothing taken or
refunded), with what each means. Any code not listed leaves the outcome unknown."""

from __future__ import annotations

# The allow-list of a sale's final declines: nothing was taken. Anything else is unknown.
DECLINED = {
    "33": "amount over limit",
    "61": "invalid card or code",
    "63": "card status not valid",
    "64": "insufficient balance",
    "65": "wrong PIN or expiry",
    "73": "card expired",
}

# A void's or refund's final refusals: nothing was refunded.
REFUND_DECLINED = {
    "31": "merchant cannot refund now",
    "33": "amount over limit",
    "35": "original missing or in the wrong state",
    "36": "does not match the original",
}
