"""What WeChat Pay's states and error codes mean for windowpay (docs/PROVIDERS.md, "WeChat
Pay ... outcomes"). The final declines of a pay call and the final refusals of a refund
are in declines.py; everything here is read from the same documents: the query's
trade_state list, the refund's status list, and the error codes of reverse, close and the
trade bill."""

from __future__ import annotations

from orchestrator.providers.port import RefundStatus, TradeStatus

TRADE_STATES = {
    "SUCCESS": TradeStatus.PAID,
    "REFUND": TradeStatus.PAID,  # paid, then (partly) refunded
    "USERPAYING": TradeStatus.CONFIRMING,  # code payments only
    "NOTPAY": TradeStatus.CONFIRMING,
    "PAYERROR": TradeStatus.DECLINED,  # code payments only
    "CLOSED": TradeStatus.CLOSED,
    "REVOKED": TradeStatus.CLOSED,  # a reversed code payment
}
USERPAYING = "USERPAYING"  # the payer is confirming (a code payment's 202 answer)

# A pay call refused because the trade number is already closed or reversed.
PAY_CLOSED = frozenset({"ORDER_CLOSED", "ORDER_REVERSED"})

REFUND_STATUS = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "CLOSED": RefundStatus.FAILED,
    "PROCESSING": RefundStatus.PENDING,
    "ABNORMAL": RefundStatus.PENDING,  # stuck at the payer's bank: a person decides
}

# Error answers that ask for the same call again. SYSTEM_ERROR is WeChat's "try again with
# the same parameters"; USERPAYING on a reverse or close means the payer is still
# confirming, which the next try settles; FREQUENCY_LIMITED asks to slow down.
TRY_AGAIN = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", USERPAYING, "FREQUENCY_LIMITED"})

# A reverse answered ORDER_NOT_EXIST: WeChat has no trade under the number *now*. While
# the unclear pay call could still reach WeChat with a payment code it takes, that is "not
# yet", asked again. A payment code is valid for one minute (WeChat Pay's POS guide,
# "Important parameters": auth_code; `payment_code_life_s` in defaults.toml), so
# never_created_after(life) after the pay call (twice the life, for the phone's clock and
# a slow network) no pay call can create the trade any more: ORDER_NOT_EXIST, confirmed by
# a query's, then means nothing was taken and nothing can be (adapter.py,
# docs/PROVIDERS.md). WeChat's own MicroPay sample also takes a query's ORDERNOTEXIST as
# "the payment failed".
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
PAYMENT_CODE_LIFE_S = 60.0  # the default of payment_code_life_s


def never_created_after(payment_code_life_s: float = PAYMENT_CODE_LIFE_S) -> float:
    """Seconds after a pay call past which ORDER_NOT_EXIST, confirmed, is final."""
    return 2 * payment_code_life_s


NEVER_CREATED_AFTER_S = never_created_after()
REVERSE_DONE = frozenset({"ORDER_CLOSED"})  # closed already: nothing was kept

# Close of a Native trade. ORDER_NOT_EXIST is closed for good here: the code_url of a
# trade WeChat never created was never shown to anyone, so nobody can pay it.
CLOSE_DONE = frozenset({"ORDER_CLOSED", "ORDER_NOT_EXIST"})
CLOSE_PAID = "ORDERPAID"

# Trade bill (申请交易账单): no trades that day, or the bill is not made yet.
NO_STATEMENT = "NO_STATEMENT_EXIST"
STATEMENT_CREATING = "STATEMENT_CREATING"
