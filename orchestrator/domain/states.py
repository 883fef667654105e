"""States, events and the transition tables of orders and attempts (docs/DOMAIN.md §4).

The tables are the single source of truth: every allowed (state, event) pair is listed,
anything else is an IllegalTransition.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from orchestrator.domain.channel import Channel as Channel  # generated from the proto
from orchestrator.domain.errors import IllegalTransition


class PayMode(StrEnum):
    PAYER_PRESENTS_CODE = "PAYER_PRESENTS_CODE"  # the terminal scans the payer's code
    PAYER_SCANS_QR = "PAYER_SCANS_QR"  # the payer scans the provider's QR code


class OrderState(StrEnum):
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAYING = "PAYING"
    PAID = "PAID"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class AttemptState(StrEnum):
    SUBMITTED = "SUBMITTED"
    AWAITING_PAYER = "AWAITING_PAYER"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REVERSING = "REVERSING"
    REVERSED = "REVERSED"
    UNKNOWN = "UNKNOWN"
    LATE_SUCCESS_REFUNDED = "LATE_SUCCESS_REFUNDED"


class OrderEvent(StrEnum):
    ATTEMPT_STARTED = "ATTEMPT_STARTED"
    ATTEMPT_SUCCEEDED = "ATTEMPT_SUCCEEDED"
    ATTEMPT_ENDED_UNPAID = "ATTEMPT_ENDED_UNPAID"
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    REFUND_PART = "REFUND_PART"
    REFUND_REST = "REFUND_REST"


class AttemptEvent(StrEnum):
    PAYER_CONFIRMING = "PAYER_CONFIRMING"  # provider: the payer is still confirming
    QR_CODE_READY = "QR_CODE_READY"  # provider: made the QR code the payer is to scan
    PAID = "PAID"  # provider: the money is taken
    DECLINED = "DECLINED"  # provider: final refusal, nothing taken
    NO_ANSWER = "NO_ANSWER"  # timeout or system error: outcome unknown
    REVERSAL_STARTED = "REVERSAL_STARTED"  # recorded before the reversal is sent
    REVERSED = "REVERSED"  # provider confirmed the reversal / cancel
    REVERSAL_ABANDONED = "REVERSAL_ABANDONED"  # gave up; a follow-up keeps watching
    FOLLOW_UP_CLEARED = "FOLLOW_UP_CLEARED"  # the provider kept nothing: no more watching
    LATE_SUCCESS = "LATE_SUCCESS"  # found paid after all: it is refunded automatically
    LATE_SUCCESS_REFUNDED = "LATE_SUCCESS_REFUNDED"  # that refund went through


class RefundState(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


FINAL_ATTEMPT_STATES = frozenset(
    {
        AttemptState.SUCCEEDED,
        AttemptState.FAILED,
        AttemptState.REVERSED,
        AttemptState.LATE_SUCCESS_REFUNDED,
    }
)
# An order in one of these states takes no further payment.
CLOSED_ORDER_STATES = frozenset(
    {
        OrderState.PAID,
        OrderState.CANCELLED,
        OrderState.EXPIRED,
        OrderState.PARTIALLY_REFUNDED,
        OrderState.REFUNDED,
    }
)

_S = OrderState
_E = OrderEvent
ORDER_TRANSITIONS: dict[tuple[OrderState, OrderEvent], OrderState] = {
    (_S.AWAITING_PAYMENT, _E.ATTEMPT_STARTED): _S.PAYING,
    (_S.AWAITING_PAYMENT, _E.CANCEL): _S.CANCELLED,
    (_S.AWAITING_PAYMENT, _E.EXPIRE): _S.EXPIRED,
    (_S.PAYING, _E.ATTEMPT_SUCCEEDED): _S.PAID,
    (_S.PAYING, _E.ATTEMPT_ENDED_UNPAID): _S.AWAITING_PAYMENT,
    (_S.PAID, _E.REFUND_PART): _S.PARTIALLY_REFUNDED,
    (_S.PAID, _E.REFUND_REST): _S.REFUNDED,
    (_S.PARTIALLY_REFUNDED, _E.REFUND_PART): _S.PARTIALLY_REFUNDED,
    (_S.PARTIALLY_REFUNDED, _E.REFUND_REST): _S.REFUNDED,
}

_A = AttemptState
_AE = AttemptEvent
ATTEMPT_TRANSITIONS: dict[tuple[AttemptState, AttemptEvent], AttemptState] = {
    (_A.SUBMITTED, _AE.PAYER_CONFIRMING): _A.AWAITING_PAYER,
    (_A.SUBMITTED, _AE.QR_CODE_READY): _A.AWAITING_PAYER,
    (_A.SUBMITTED, _AE.PAID): _A.SUCCEEDED,
    (_A.SUBMITTED, _AE.DECLINED): _A.FAILED,
    (_A.SUBMITTED, _AE.NO_ANSWER): _A.UNKNOWN,
    (_A.SUBMITTED, _AE.REVERSAL_STARTED): _A.REVERSING,
    (_A.AWAITING_PAYER, _AE.PAID): _A.SUCCEEDED,
    (_A.AWAITING_PAYER, _AE.DECLINED): _A.FAILED,
    (_A.AWAITING_PAYER, _AE.NO_ANSWER): _A.UNKNOWN,
    (_A.AWAITING_PAYER, _AE.REVERSAL_STARTED): _A.REVERSING,
    (_A.UNKNOWN, _AE.PAYER_CONFIRMING): _A.AWAITING_PAYER,
    (_A.UNKNOWN, _AE.PAID): _A.SUCCEEDED,
    (_A.UNKNOWN, _AE.DECLINED): _A.FAILED,
    (_A.UNKNOWN, _AE.REVERSAL_STARTED): _A.REVERSING,
    (_A.REVERSING, _AE.REVERSED): _A.REVERSED,
    (_A.REVERSING, _AE.REVERSAL_ABANDONED): _A.FAILED,
    # A QR trade's close refused because the payer paid first: the payment stands.
    (_A.REVERSING, _AE.PAID): _A.SUCCEEDED,
    # After the fact, for attempts that ended unpaid: what the provider says later.
    (_A.FAILED, _AE.FOLLOW_UP_CLEARED): _A.FAILED,
    (_A.REVERSED, _AE.FOLLOW_UP_CLEARED): _A.REVERSED,  # a closed QR trade stayed unpaid
    (_A.FAILED, _AE.LATE_SUCCESS): _A.FAILED,
    (_A.REVERSED, _AE.LATE_SUCCESS): _A.REVERSED,
    (_A.FAILED, _AE.LATE_SUCCESS_REFUNDED): _A.LATE_SUCCESS_REFUNDED,
    (_A.REVERSED, _AE.LATE_SUCCESS_REFUNDED): _A.LATE_SUCCESS_REFUNDED,
}


def next_order_state(state: OrderState, event: OrderEvent) -> OrderState:
    try:
        return ORDER_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"order in state {state} cannot take {event}") from None


def next_attempt_state(state: AttemptState, event: AttemptEvent) -> AttemptState:
    try:
        return ATTEMPT_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"attempt in state {state} cannot take {event}") from None


OPEN_ORDER_STATES = frozenset({OrderState.AWAITING_PAYMENT, OrderState.PAYING})


def needs_attention(
    state: str, attempts: Iterable[tuple[str, bool]], refund_states: Iterable[str]
) -> bool:
    """Whether an order still needs its service point: payable, an attempt (state,
    follow_up) not final or under follow-up, or a refund not yet through. The one rule
    behind Order.is_open and records.is_open (states compare as their values)."""
    return (
        state in OPEN_ORDER_STATES
        or any(s not in FINAL_ATTEMPT_STATES or follow_up for s, follow_up in attempts)
        or any(s == RefundState.PENDING for s in refund_states)
    )
