"""End-of-day settlement per window and channel (日结): what each window took and gave
back on one local business day, cash included. Late successes refunded automatically
are not the window's takings and are left out (reconciliation reports them).

A refund is booked to the window of its order, under the channel that was paid: a cash
refund is paid from that window's drawer (the service point refuses it at any other
window), a provider refund goes back the way the payment came."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, tzinfo

from orchestrator.domain.calendar import local_day
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptState, Channel, RefundState


@dataclass(slots=True)
class SettlementRow:
    service_point_id: str
    window_id: str
    channel: Channel
    payments: int = 0
    payments_fen: int = 0
    refunds: int = 0
    refunds_fen: int = 0


def _on(ms: int | None, day: date, zone: tzinfo) -> bool:
    return ms is not None and local_day(ms, zone).date() == day


def settle(orders: Iterable[Order], day: date, zone: tzinfo) -> list[SettlementRow]:
    rows: dict[tuple[str, Channel], SettlementRow] = {}

    def row(order: Order, channel: Channel) -> SettlementRow:
        key = (order.window_id, channel)
        if key not in rows:
            rows[key] = SettlementRow(order.service_point_id, order.window_id, channel)
        return rows[key]

    for order in orders:
        for attempt in order.attempts:
            if attempt.state is AttemptState.SUCCEEDED and _on(attempt.finished_at, day, zone):
                target = row(order, attempt.channel)
                target.payments += 1
                target.payments_fen += attempt.amount_fen
        for refund in order.refunds:
            if (
                refund.state is RefundState.SUCCEEDED
                and not refund.automatic
                and _on(refund.finished_at, day, zone)
            ):
                target = row(order, order.attempt(refund.attempt_id).channel)
                target.refunds += 1
                target.refunds_fen += refund.amount_fen
    return sorted(rows.values(), key=lambda r: (r.service_point_id, r.window_id, r.channel))
