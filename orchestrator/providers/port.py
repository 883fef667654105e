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
    at_ms: int = 0  # when the attempt began: UnionPay's txnTime, asked again by query

    @property
    def trade(self) -> TradeRef:
        return TradeRef(self.out_trade_no, self.amount_fen, self.at_ms)


@dataclass(frozen=True, slots=True)
class QrCall:
    """Ask the provider for a QR code the payer scans (PAYER_SCANS_QR)."""

    out_trade_no: str
    amount_fen: int
    store_id: str
    terminal_id: str
    description: str
    at_ms: int  # when the attempt began (UnionPay's txnTime)
    expires_at_ms: int  # the code's end: windowpay closes the trade then

    @property
    def trade(self) -> TradeRef:
        return TradeRef(self.out_trade_no, self.amount_fen, self.at_ms)


@dataclass(frozen=True, slots=True)
class QrAnswer:
    code_url: str  # what the QR code shown to the payer encodes


@dataclass(frozen=True, slots=True)
class TradeRef:
    """Which trade a query or reversal is about, as the pay call named it."""

    out_trade_no: str
    amount_fen: int
    at_ms: int  # the pay call's time (UnionPay names the original by orderId + txnTime)
    trade_no: str = ""  # the provider's own number, once an answer gave it


@dataclass(frozen=True, slots=True)
class RefundCall:
    trade: TradeRef  # the paid trade; trade_no is required by UnionPay (origQryId)
    out_refund_no: str
    refund_fen: int
    at_ms: int  # when the refund was first sent: a resend and its query name this time


@dataclass(frozen=True, slots=True)
class TradeAnswer:
    status: TradeStatus
    trade_no: str = ""
    reason: str = ""


class ReverseStatus(StrEnum):
    DONE = "DONE"  # reversed / cancelled / closed: nothing is kept
    RETRY = "RETRY"  # the provider asks to try again (recall=Y, retry_flag=Y)
    PAID = "PAID"  # close refused: the payer paid first (QR trades only)


@dataclass(frozen=True, slots=True)
class ReverseAnswer:
    status: ReverseStatus
    reason: str = ""


class RefundStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"  # the money went back to the payer
    FAILED = "FAILED"  # a documented final refusal: nothing was refunded
    PENDING = "PENDING"  # accepted, or unclear: ask again with a refund query
    NOT_FOUND = "NOT_FOUND"  # the provider knows no such refund: it may be sent again


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    status: RefundStatus
    refund_no: str = ""
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED)


class ProviderError(Exception):
    """A call that got no usable answer. `retryable`: nothing happened, send it again."""

    retryable = False


class ProviderUnavailable(ProviderError):
    """An explicit refusal to process (HTTP 5xx, connection refused): nothing happened."""

    retryable = True


class OutcomeUnknown(ProviderError):
    """Timeout, system error, or an answer that cannot be trusted: it may have happened."""


class AnswerMismatch(OutcomeUnknown):
    """A verified answer about something else than what was asked (another trade number,
    amount or merchant): it says nothing about our request."""


def check_bound(what: str, asked: object, answered: object) -> None:
    """Raise AnswerMismatch unless the answer's `what` is the one the request named."""
    if asked != answered:
        raise AnswerMismatch(f"answer names {what} {answered!r}, the request {asked!r}")


class BillNotReady(ProviderError):
    """The provider has not made the day's bill yet (WeChat's STATEMENT_CREATING): ask
    again later. Reconciliation reports the day as not yet done, not as a difference."""

    retryable = True


class ProviderRejected(ProviderError):
    """The provider refused the request itself (bad signature, bad parameters): final."""


class PaymentProvider(Protocol):
    channel: Channel

    async def pay(self, call: PayCall) -> TradeAnswer: ...

    async def query(self, trade: TradeRef) -> TradeAnswer: ...

    async def reverse(self, trade: TradeRef) -> ReverseAnswer: ...

    async def create_qr(self, call: QrCall) -> QrAnswer:
        """A QR code for the payer to scan (WeChat Native, Alipay precreate, UnionPay
        申码). The trade is then followed by query like any other."""
        ...

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        """Close an unpaid QR trade so that its code can no longer be paid: DONE when
        closed (or never created), PAID when the payer paid first, RETRY when unclear."""
        ...

    async def refund(self, call: RefundCall) -> RefundAnswer:
        """Send (or resend: the same out_refund_no never refunds twice) a refund."""
        ...

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        """The refund's own state, asked by its out_refund_no."""
        ...

    async def bill(self, day: date) -> bytes:
        """The provider's bill of the day, as its own file format."""
        ...
