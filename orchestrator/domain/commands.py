"""What the front door asks a service point to do, and what it answers.

Commands and results cross the Ray boundary, so they are small frozen dataclasses of
plain values; order snapshots travel as their JSON bytes (the form stored in Redis).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.states import Channel, PayMode


@dataclass(frozen=True, slots=True)
class CreateOrder:
    request_id: str
    business_no: str
    window_id: str
    payer_name: str
    lines: tuple[RequestedLine, ...]
    created_by: str = ""  # the calling business principal, set by the front door

    def fingerprint(self) -> str:
        lines = ";".join(
            f"{line.fee_code}x{line.quantity}@{line.unit_price_fen}/{line.amount_fen}"
            for line in self.lines
        )
        return _digest(f"CreateOrder|{self.business_no}|{self.window_id}|{self.payer_name}|{lines}")


@dataclass(frozen=True, slots=True)
class Pay:
    request_id: str
    terminal_id: str
    terminal_window_id: str  # the window the terminal is bound to (from config)
    order_id: str
    channel: Channel
    auth_code: str
    cash_received_fen: int
    mode: PayMode = PayMode.PAYER_PRESENTS_CODE

    def fingerprint(self) -> str:
        text = (
            f"Pay|{self.terminal_id}|{self.order_id}|{self.channel}|"
            f"{self.auth_code}|{self.cash_received_fen}"
        )
        if self.mode is PayMode.PAYER_SCANS_QR:
            text += "|QR"  # code-mode fingerprints stay what they were
        return _digest(text)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    request_id: str
    order_id: str
    reason: str
    cancelled_by: str = ""  # "principal: <name>" or "console: <username>", never the caller's text

    def fingerprint(self) -> str:
        return _digest(f"CancelOrder|{self.order_id}|{self.reason}")


@dataclass(frozen=True, slots=True)
class RefundOrder:
    request_id: str
    terminal_id: str
    terminal_window_id: str
    order_id: str
    amount_fen: int
    reason: str
    supervisor_id: str

    def fingerprint(self) -> str:
        return _digest(
            f"Refund|{self.terminal_id}|{self.order_id}|{self.amount_fen}|"
            f"{self.reason}|{self.supervisor_id}"
        )


@dataclass(frozen=True, slots=True)
class SettleLateSuccess:
    """The provider's bill shows paid an attempt windowpay ended unpaid (reconciliation)."""

    request_id: str
    order_id: str
    attempt_id: str
    trade_no: str
    reason: str

    def fingerprint(self) -> str:
        return _digest(f"SettleLateSuccess|{self.order_id}|{self.attempt_id}|{self.trade_no}")


Command = CreateOrder | Pay | CancelOrder | RefundOrder | SettleLateSuccess


def fingerprint(command: Command) -> str:
    """A digest of everything but the request id: same key + other fingerprint = refused.
    What goes into it is each command's own `fingerprint`."""
    return command.fingerprint()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Done:
    """The command's answer: the order as it stood when the command took effect."""

    order: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    """A payment attempt (or a refund) was recorded and is under way; its outcome follows
    as order events."""

    order: bytes
    attempt_id: str = ""
    refund_id: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    code: ErrorCode
    message: str


Result = Done | Accepted | Rejected
