"""What the service-point core reports as it works, turned into Prometheus metrics.

The core calls an observer at the moments that matter (a command submitted, a request
replayed or refused, an attempt or refund ended, a reversal, a late success, a refund
overdue, an order recalled from the record) and never touches a metric itself.
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.domain.order import Attempt, Order, Refund
from orchestrator.domain.states import AttemptState, Channel
from orchestrator.metrics import (
    ACTOR_SUBMITS,
    ATTEMPT_DURATION,
    ATTEMPTS,
    IDEMPOTENCY,
    LATE_SUCCESSES,
    ORDER_RECALLS,
    PAID_FEN,
    PAYMENTS,
    REFUNDS,
    REFUNDS_OVERDUE,
    REVERSALS,
)


class CoreObserver(Protocol):
    def submitted(self, command_type: str) -> None: ...

    def idempotency(self, command_type: str, result: str) -> None:
        """`result` is "replayed" or "conflict"."""
        ...

    def attempt_ended(self, order: Order, attempt: Attempt) -> None: ...

    def refund_ended(self, order: Order, refund: Refund) -> None: ...

    def reversal(self, channel: Channel, outcome: str) -> None:
        """`outcome` is "done" or "abandoned"."""
        ...

    def late_success(self, channel: Channel) -> None: ...

    def refund_overdue(self, channel: Channel, overdue: bool) -> None: ...

    def recalled(self, outcome: str) -> None:
        """An order that had left the store, asked for: `outcome` is "recalled",
        "already_back", "not_in_record", "record_unavailable" or "record_mismatch"."""
        ...


class MetricsObserver:
    """The observer of a deployed core: every report becomes a Prometheus metric."""

    def submitted(self, command_type: str) -> None:
        ACTOR_SUBMITS.labels(command_type).inc()

    def idempotency(self, command_type: str, result: str) -> None:
        IDEMPOTENCY.labels(command_type, result).inc()

    def attempt_ended(self, order: Order, attempt: Attempt) -> None:
        channel, outcome = attempt.channel.value, attempt.state.value
        ATTEMPTS.labels(channel, outcome, order.service_point_id).inc()
        if attempt.finished_at is not None:
            ATTEMPT_DURATION.labels(channel, outcome).observe(
                (attempt.finished_at - attempt.created_at) / 1000
            )
        if attempt.state is AttemptState.SUCCEEDED:
            PAYMENTS.labels(channel, order.service_point_id).inc()
            PAID_FEN.labels(channel, order.service_point_id).inc(attempt.amount_fen)

    def refund_ended(self, order: Order, refund: Refund) -> None:
        channel = order.attempt(refund.attempt_id).channel.value
        REFUNDS.labels(channel, refund.state.value, str(refund.automatic).lower()).inc()

    def reversal(self, channel: Channel, outcome: str) -> None:
        REVERSALS.labels(channel.value, outcome).inc()

    def late_success(self, channel: Channel) -> None:
        LATE_SUCCESSES.labels(channel.value).inc()

    def refund_overdue(self, channel: Channel, overdue: bool) -> None:
        gauge = REFUNDS_OVERDUE.labels(channel.value)
        if overdue:
            gauge.inc()
        else:
            gauge.dec()

    def recalled(self, outcome: str) -> None:
        ORDER_RECALLS.labels(outcome).inc()
