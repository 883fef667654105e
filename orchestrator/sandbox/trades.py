"""What a sandbox ledger holds: trades (a payment, or a QR code awaiting the payer) and
their refunds, and how each is written to the ledger's journal."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import orjson


class TradeState(StrEnum):
    NOTPAY = "NOTPAY"  # a QR code was made; the payer has not paid (or not scanned) yet
    USERPAYING = "USERPAYING"
    SUCCESS = "SUCCESS"
    PAYERROR = "PAYERROR"  # declined
    CLOSED = "CLOSED"  # closed before any money moved
    REVOKED = "REVOKED"  # reversed after the money moved: given back
    REFUND = "REFUND"  # (partly) refunded


class RefundState(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"


class Behaviour(StrEnum):
    PAYS = "0000"
    CONFIRMS_LATER = "1111"
    NEVER_CONFIRMS = "2222"
    DECLINED = "3333"
    SYSTEM_ERROR_PAID = "4444"
    HANGS_PAID = "5555"
    UNAVAILABLE = "6666"
    SLOW_QUERY = "7777"
    REVERSE_RETRY = "8888"
    CODE_INVALID = "9999"
    PROXY_503_PAID = "1212"  # paid; the answer is a proxy's unsigned 503; resend: "paid"
    WRONG_TRADE_ANSWER = "1313"  # paid; the answer is a signed success for another trade
    REFUND_SLOW = "2323"  # every refund stays processing for refund_processing_s
    REFUND_ANSWER_LOST = "2424"  # a refund's answer is lost; a resend: "already refunded"
    REFUND_REFUSED = "2525"  # refunds refused: the merchant's balance is too low

    @classmethod
    def of(cls, auth_code: str) -> Behaviour:
        try:
            return cls(auth_code[-4:])
        except ValueError:
            return cls.PAYS


@dataclass(slots=True)
class TradeRefund:
    out_refund_no: str
    refund_no: str
    amount_fen: int
    at: float
    kind: str = "refund"  # or "void": a same-day cancellation of the whole sale
    state: RefundState = RefundState.SUCCESS
    done_at: float | None = None  # when a processing refund goes through


@dataclass(slots=True)
class Trade:
    out_trade_no: str
    trade_no: str
    amount_fen: int
    auth_code: str
    behaviour: Behaviour
    store_id: str
    state: TradeState
    created_at: float
    paid_at: float | None = None
    confirm_at: float | None = None
    closed_at: float | None = None
    reason: str = ""
    reverse_calls: int = 0
    refunds: list[TradeRefund] = field(default_factory=list)
    qr_token: str = ""  # the payer scans a code: the token its URL carries
    qr_expires_at: float | None = None
    scanned: bool = False  # the payer app has scanned the code
    notify: bool = True  # is the payment notified (the payer app may drop it; a WeChat
    # code payment never is)
    failed_tries: tuple[str, ...] = ()  # the payer's refused tries at a QR code, which
    # stays payable (the reason of each)

    @property
    def refunded_fen(self) -> int:
        """Refunded or being refunded: what can no longer be refunded again."""
        return sum(r.amount_fen for r in self.refunds)


def encode_trade(trade: Trade) -> bytes:
    return orjson.dumps(trade)


_TRADE_FIELDS = {f.name for f in fields(Trade)}
_REFUND_FIELDS = {f.name for f in fields(TradeRefund)}


def decode_trade(body: bytes) -> Trade:
    """A trade as `encode_trade` wrote it (a field added since reads as its default)."""
    raw: dict[str, Any] = {k: v for k, v in orjson.loads(body).items() if k in _TRADE_FIELDS}
    raw["state"] = TradeState(raw["state"])
    raw["behaviour"] = Behaviour(raw["behaviour"])
    raw["failed_tries"] = tuple(raw.get("failed_tries", ()))
    raw["refunds"] = [
        TradeRefund(**{**r, "state": RefundState(r["state"])})
        for r in (
            {k: v for k, v in refund.items() if k in _REFUND_FIELDS}
            for refund in raw.get("refunds", [])
        )
    ]
    return Trade(**raw)
