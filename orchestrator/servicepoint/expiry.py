"""The expiry sweep of a service-point core: every `expiry_sweep_interval_s`, the unpaid
orders past their expiry are expired, all in one group commit. (A payment naming an
order at or past its expiry expires it at once: handlers.py.)"""

from __future__ import annotations

import logging

from orchestrator.config import Settings
from orchestrator.domain.states import OrderState
from orchestrator.providers.engine import Clock
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.orders import OrderBook

log = logging.getLogger(__name__)


async def sweep_expired(
    settings: Settings, clock: Clock, book: OrderBook, commit: GroupCommit
) -> None:
    """Run until cancelled (the core's stop)."""
    while True:
        await clock.sleep(settings.expiry_sweep_interval_s)
        now = clock.now_ms()
        due = [
            order
            for order in book.open.values()
            if order.state is OrderState.AWAITING_PAYMENT and now >= order.expires_at
        ]
        for order in due:
            book.stage(order, [order.expire(now)])
        if due:
            await commit.durable()
            log.info("expired %d unpaid orders", len(due))
