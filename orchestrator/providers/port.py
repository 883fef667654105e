"""The one port to every payment provider, in the domain's own terms.

Adapters translate their protocol into these answers and their failures into the error
tree below, each error saying whether the call may simply be sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Protocol

from orchestrator.domain.states import Channel


class TradeStatus(StrEnum):
    PAID = "PAID"  # money taken
    CONFIRMING = "CONFIRMING"  # the payer is still confirming (USERPAYING / 10003)
    DECLINED = "DECLINED"  # final refusal, nothing taken
    CLOSED = "CLOSED"  # closed or reversed at the provider, nothing kept
    NOT_FOUND = "NOT_FOUND"  # the provider knows no such trade


@dataclass(frozen=True, slots=True)
class PayCall:
    out_trade_no: str
    auth_code: str
    amount_fen: int
    store_id: str  # the service point, sent as the provider's store id
    terminal_id: str
    description: str


@dataclass(frozen=True, slots=True)
class TradeAnswer:
    status: TradeStatus
    trade_no: str = ""
    reason: str = ""


class ReverseStatus(StrEnum):
    DONE = "DONE"  # reversed / cancelled / closed: nothing is kept
    RETRY = "RETRY"  # the provider asks to try again (recall=Y, retry_flag=Y)


@dataclass(frozen=True, slots=True)
class ReverseAnswer:
    status: ReverseStatus
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    refund_no: str
    done: bool
    reason: str = ""


class ProviderError(Exception):
    """A call that got no usable answer. `retryable`: nothing happened, send it again."""

    retryable = False


class ProviderUnavailable(ProviderError):
    """An explicit refusal to process (HTTP 5xx, connection refused): nothing happened."""

    retryable = True


class OutcomeUnknown(ProviderError):
    """Timeout, system error, or an answer that cannot be trusted: it may have happened."""


class ProviderRejected(ProviderError):
    """The provider refused the request itself (bad signature, bad parameters): final."""


class PaymentProvider(Protocol):
    channel: Channel

    async def pay(self, call: PayCall) -> TradeAnswer: ...

    async def query(self, out_trade_no: str) -> TradeAnswer: ...

    async def reverse(self, out_trade_no: str) -> ReverseAnswer: ...

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int
    ) -> RefundAnswer: ...

    async def bill(self, day: date) -> bytes:
        """The provider's bill of the day, as its own file format."""
        ...
