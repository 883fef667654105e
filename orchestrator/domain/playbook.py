"""A channel's documented procedure after a pay call, as configuration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class NoAnswer(StrEnum):
    """What to do when the pay call gets no usable answer."""

    QUERY = "query"  # WeChat, Alipay: query, then reverse / cancel if still unclear
    REVERSE = "reverse"  # UnionPay: send the reversal (冲正) at once


@dataclass(frozen=True, slots=True)
class Playbook:
    pay_timeout_s: float  # how long to wait for the pay call's answer
    query_timeout_s: float
    query_interval_s: float
    confirm_window_s: float  # stop waiting for the payer this long after the pay call
    reverse_not_before_s: float  # no reversal earlier than this after the pay call
    reverse_interval_s: float
    reverse_give_up_after_s: float  # after the pay call; then reconciliation takes over
    pay_retries: int  # resends of a pay that never left (connection refused); no other
    no_answer: NoAnswer
    # After a reversal was given up: how often, and how long, to ask whether the payer
    # paid after all (a late success is refunded automatically).
    follow_up_interval_s: float = 60.0
    follow_up_window_s: float = 86_400.0
    # PAYER_SCANS_QR: how long the code is valid (then the trade is closed), and how long
    # after the close a payment racing it is still looked for (it is refunded).
    qr_expiry_s: float = 120.0
    qr_follow_up_s: float = 300.0

    @property
    def final_by_s(self) -> float:
        """When, after the pay call, an attempt should have reached its final state if the
        provider answers as documented; later than that it is stuck."""
        settled = max(self.confirm_window_s, self.reverse_not_before_s, self.pay_timeout_s)
        return settled + 3 * max(self.query_interval_s, self.reverse_interval_s)

    @property
    def qr_final_by_s(self) -> float:
        """The same for a QR attempt: the code's life, then its close."""
        return self.qr_expiry_s + 3 * max(self.query_interval_s, self.reverse_interval_s)

    def scaled(self, factor: float) -> Playbook:
        """The same procedure with every duration multiplied (tests run it fast)."""
        return replace(
            self,
            pay_timeout_s=self.pay_timeout_s * factor,
            query_timeout_s=self.query_timeout_s * factor,
            query_interval_s=self.query_interval_s * factor,
            confirm_window_s=self.confirm_window_s * factor,
            reverse_not_before_s=self.reverse_not_before_s * factor,
            reverse_interval_s=self.reverse_interval_s * factor,
            reverse_give_up_after_s=self.reverse_give_up_after_s * factor,
            follow_up_interval_s=self.follow_up_interval_s * factor,
            follow_up_window_s=self.follow_up_window_s * factor,
            qr_expiry_s=self.qr_expiry_s * factor,
            qr_follow_up_s=self.qr_follow_up_s * factor,
        )
