"""Which drawer pays a cash refund: the one of the window that took the cash. Two windows
of one service point, the core over the in-memory store, and the day's settlement."""

from __future__ import annotations

from orchestrator.domain.calendar import local_day
from orchestrator.domain.commands import Accepted, Done, RefundOrder, Rejected
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.states import Channel
from orchestrator.reconcile.settlement import settle
from orchestrator.store import keys
from tests.core_harness import Harness, harness, one, order_of, settled
from tests.support import new_id

__all__ = ["harness"]  # the fixture, used by name


def refund_at(h: Harness, window: int, order_id: str, amount_fen: int) -> RefundOrder:
    terminal, window_id = f"{h.sp}T{window}", h.window(window)
    return RefundOrder(new_id(), terminal, window_id, order_id, amount_fen, "退费", "S1")


async def paid(h: Harness, window: int, channel: Channel) -> str:
    core = h.cores[-1]
    order_id: str = order_of(await one(core, h.create(window)))["order_id"]
    await one(core, h.pay(order_id, channel, window=window))
    return order_id


async def test_cash_goes_back_from_the_drawer_it_went_into(harness: Harness) -> None:
    core = await harness.core()
    w1_cash = await paid(harness, 1, Channel.CASH)
    w2_cash = await paid(harness, 2, Channel.CASH)
    w1_card = await paid(harness, 1, Channel.WECHAT)
    await settled(harness, w1_card)

    # Window 1's cash asked back at window 2: refused, and nothing of it is stored.
    before = (await harness.store.order(w1_cash), await harness.store.journal(w1_cash))
    elsewhere = refund_at(harness, 2, w1_cash, 2000)
    refused = await one(core, elsewhere)
    assert isinstance(refused, Rejected) and refused.code is ErrorCode.PERMISSION_DENIED
    assert f"paid in cash at window {harness.window(1)}" in refused.message
    assert (await harness.store.order(w1_cash), await harness.store.journal(w1_cash)) == before
    assert keys.request_claim(elsewhere.request_id) not in harness.store.strings
    assert keys.response(harness.sp, elsewhere.request_id) not in harness.store.strings

    # At its own window the drawer pays it back.
    back = await one(core, refund_at(harness, 1, w1_cash, 2000))
    assert isinstance(back, Done) and order_of(back)["refunded_fen"] == 2000
    # A card refund comes from no drawer: any window of the point may ask for it.
    card = await one(core, refund_at(harness, 2, w1_card, 5000))
    assert isinstance(card, Accepted)
    await settled(harness, w1_card)

    orders = [await harness.stored(o) for o in (w1_cash, w2_cash, w1_card)]
    day = local_day(orders[0].created_at, harness.config.settings.zone).date()
    rows = settle(orders, day, harness.config.settings.zone)
    figures = {
        (r.window_id, r.channel): (r.payments, r.payments_fen, r.refunds, r.refunds_fen)
        for r in rows
    }
    assert figures == {
        (harness.window(1), Channel.CASH): (1, 12000, 1, 2000),
        (harness.window(2), Channel.CASH): (1, 12000, 0, 0),
        (harness.window(1), Channel.WECHAT): (1, 12000, 1, 5000),
    }
