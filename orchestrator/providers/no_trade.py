"""A reversal answered "no such trade" (WeChat's ORDER_NOT_EXIST, Alipay's cancel 10000
without an `action`, UnionPay's 冲正 34). The provider has no trade under the number
*now*; the pay call that was unclear (the reason for the reversal) may still be on its
way and create the trade afterwards, charging the payer. So the answer is "not yet"
while that can happen: until twice the payment code's life after the pay call (the code
is refused once it has expired; twice, for a phone's clock and a slow network). After
that, once the provider's query finds no trade either, nothing was taken and nothing
can be: the reversal is done. A trade found meanwhile is undone by the next reversal,
which the engine sends on its schedule (docs/PROVIDERS.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.providers.port import (
    ProviderError,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)

PAYMENT_CODE_LIFE_S = 60.0  # a payment code's life at all three providers, by default


@dataclass(frozen=True, slots=True)
class NoTrade:
    """A verified reversal answer that says the provider has no such trade now."""

    said: str  # the provider's words, for the reason recorded


def never_created_after(payment_code_life_s: float = PAYMENT_CODE_LIFE_S) -> float:
    """Seconds after a pay call past which "no such trade", confirmed, is final."""
    return 2 * payment_code_life_s


def may_still_arrive(trade: TradeRef, now_s: float, never_created_after_s: float) -> bool:
    """Whether the pay call of `trade` may still create it at the provider: its time
    unknown (a resumed attempt without one), or less than the window ago."""
    return trade.at_ms <= 0 or now_s - trade.at_ms / 1000 < never_created_after_s


def after_query(said: str, found: TradeAnswer) -> ReverseAnswer:
    """The query's answer, asked once the sale can no longer arrive: no trade, done;
    anything else (paid, waiting, closed) asks for the reversal again."""
    if found.status is TradeStatus.NOT_FOUND:
        return ReverseAnswer(ReverseStatus.DONE, f"{said}: never created, code expired")
    return ReverseAnswer(ReverseStatus.RETRY, f"{said}, query: {found.reason or found.status}")


async def settle_no_trade(
    answer: NoTrade,
    trade: TradeRef,
    query: Callable[[TradeRef], Awaitable[TradeAnswer]],
    now_s: float,
    never_created_after_s: float,
) -> ReverseAnswer:
    """What a reversal's "no such trade" means for `trade` at `now_s`: ask again while
    the sale may still arrive; after that the query decides (no answer: ask again)."""
    not_yet = ReverseAnswer(ReverseStatus.RETRY, answer.said)
    if may_still_arrive(trade, now_s, never_created_after_s):
        return not_yet
    try:
        found = await query(trade)
    except ProviderError:
        return not_yet
    return after_query(answer.said, found)
