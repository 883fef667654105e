"""A verified notification reaches the attempt's (or refund's) driver and is applied as
its own query's answer would be: once, after the pay call's answer, never against the
wrong amount, and never twice."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import TypeVar

from orchestrator.domain.ids import OrderIds, order_ids_of
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel
from orchestrator.providers.engine import (
    AttemptDriver,
    RefundDriver,
    RefundTicket,
    SystemClock,
    Ticket,
)
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.providers.port import (
    PayCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)
from orchestrator.servicepoint.notices import NoticeDesk
from tests.support import LINES, Recorded, eventually, small_config

T = TypeVar("T")

CONFIG = small_config(time_scale=1.0)
PLAYBOOK = CONFIG.playbook(Channel.WECHAT)


class PayerStillTyping:
    """The pay call answers "the payer is confirming" once `answer_pay` is set; every
    query says the same, or PAID once `paid` is set."""

    channel = Channel.WECHAT

    def __init__(self) -> None:
        self.answer_pay = asyncio.Event()
        self.paid = False
        self.queries = 0

    async def pay(self, call: PayCall) -> TradeAnswer:
        await self.answer_pay.wait()
        return TradeAnswer(TradeStatus.CONFIRMING)

    async def query(self, trade: TradeRef) -> TradeAnswer:
        self.queries += 1
        if self.paid:
            return TradeAnswer(TradeStatus.PAID, "T-OWN-QUERY")
        return TradeAnswer(TradeStatus.CONFIRMING)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        raise AssertionError("no reversal expected")

    async def refund(self, call: RefundCall) -> RefundAnswer:
        return RefundAnswer(RefundStatus.PENDING, reason="PROCESSING")

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        return RefundAnswer(RefundStatus.PENDING, reason="PROCESSING")

    async def bill(self, day: date) -> bytes:
        raise AssertionError("no bill expected")


class Fixture:
    def __init__(self) -> None:
        self.clock = SystemClock()
        self.recorded = Recorded(self.clock)
        self.attempt_id = self.recorded.start(Channel.WECHAT)
        self.provider = PayerStillTyping()
        self.desk = NoticeDesk(self.find, wait_s=5.0)
        self.driver = AttemptDriver(self.provider, PLAYBOOK, self.clock, self.recorded)
        self.desk.attempts[self.attempt_id] = self.driver.inbox
        call = PayCall(self.attempt_id, "134567890123450000", 8000, "SP01", "T", "fee")
        ticket = Ticket(self.attempt_id, AttemptState.SUBMITTED, self.clock.now_ms(), call, 8000)
        self.task = asyncio.create_task(
            self.desk.listening(
                self.desk.attempts, self.attempt_id, self.driver.inbox, self.driver.run(ticket)
            )
        )

    async def find(self, out_no: str) -> Order | None:
        return self.recorded.order if out_no.startswith(self.attempt_id[:10]) else None

    def paid(self, amount: int = 8000, trade_no: str = "T-NOTIFIED") -> Notice:
        return Notice(Channel.WECHAT, self.attempt_id, trade_no, amount, TradeStatus.PAID)

    @property
    def state(self) -> AttemptState:
        return self.recorded.order.attempt(self.attempt_id).state


async def test_a_notice_before_the_pay_answer_waits_for_it_then_settles_once() -> None:
    f = Fixture()
    observing = asyncio.create_task(f.desk.observe(f.paid()))
    await asyncio.sleep(0)  # let it reach the driver's inbox
    assert f.state is AttemptState.SUBMITTED and not observing.done()
    f.provider.answer_pay.set()
    assert await observing is NoticeOutcome.APPLIED
    await f.task
    assert f.recorded.events == [AttemptEvent.PAYER_CONFIRMING, AttemptEvent.PAID]
    assert f.recorded.order.attempt(f.attempt_id).provider_trade_no == "T-NOTIFIED"
    assert f.provider.queries == 0  # the notification answered before any query
    # The provider sends it again: one effect only.
    assert await f.desk.observe(f.paid()) is NoticeOutcome.DUPLICATE
    assert f.recorded.events == [AttemptEvent.PAYER_CONFIRMING, AttemptEvent.PAID]


async def test_a_notice_that_does_not_match_the_attempt_changes_nothing() -> None:
    f = Fixture()
    f.provider.answer_pay.set()
    assert await f.desk.observe(f.paid(amount=8001)) is NoticeOutcome.MISMATCH
    wrong_channel = Notice(Channel.ALIPAY, f.attempt_id, "T", 8000, TradeStatus.PAID)
    assert await f.desk.observe(wrong_channel) is NoticeOutcome.MISMATCH
    assert f.state in (AttemptState.SUBMITTED, AttemptState.AWAITING_PAYER)
    assert AttemptEvent.PAID not in f.recorded.events
    assert await f.desk.observe(f.paid()) is NoticeOutcome.APPLIED
    await f.task
    assert await f.desk.observe(f.paid(trade_no="T-OTHER")) is NoticeOutcome.MISMATCH


async def test_unknown_trades_and_notices_with_no_outcome() -> None:
    f = Fixture()
    stranger = Notice(Channel.WECHAT, "ZZZZZZZZZZP1ABCDEF", "T", 8000, TradeStatus.PAID)
    assert await f.desk.observe(stranger) is NoticeOutcome.UNKNOWN
    sibling = Notice(Channel.WECHAT, f.attempt_id + "X", "T", 8000, TradeStatus.PAID)
    assert await f.desk.observe(sibling) is NoticeOutcome.UNKNOWN
    typing = Notice(Channel.WECHAT, f.attempt_id, "T", 8000, TradeStatus.CONFIRMING)
    assert await f.desk.observe(typing) is NoticeOutcome.IGNORED
    f.provider.answer_pay.set()
    await eventually(lambda: _now(f.state), lambda s: s is AttemptState.AWAITING_PAYER)
    f.task.cancel()
    await asyncio.gather(f.task, return_exceptions=True)
    # No driver (a restart not yet resumed): the provider is asked to send it again.
    assert f.desk.attempts == {}
    assert await f.desk.observe(f.paid()) is NoticeOutcome.DEFERRED
    assert f.recorded.events == [AttemptEvent.PAYER_CONFIRMING]


async def test_a_notice_racing_the_drivers_own_query_has_one_effect() -> None:
    f = Fixture()
    f.provider.answer_pay.set()
    f.provider.paid = True  # the driver's next query finds the payment too
    outcomes = await asyncio.gather(
        *(f.desk.observe(f.paid(trade_no="T-OWN-QUERY")) for _ in range(3))
    )
    await f.task
    assert f.recorded.events.count(AttemptEvent.PAID) == 1
    assert set(outcomes) <= {NoticeOutcome.APPLIED, NoticeOutcome.DUPLICATE}
    assert outcomes.count(NoticeOutcome.APPLIED) <= 1


async def test_a_resent_notice_of_a_late_success_is_a_duplicate() -> None:
    """The attempt ended unpaid, then its payment was found and refunded automatically:
    the provider sending its "paid" notification again tells nothing new."""
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.WECHAT)
    desk = NoticeDesk(lambda _: _now(recorded.order), wait_s=5.0)
    paid = Notice(Channel.WECHAT, attempt_id, "T-LATE", 8000, TradeStatus.PAID)
    await recorded(AttemptEvent.DECLINED, reason="NOTENOUGH")
    assert await desk.observe(paid) is NoticeOutcome.IGNORED  # left to reconciliation
    await recorded(AttemptEvent.LATE_SUCCESS, trade_no="T-LATE")
    assert await desk.observe(paid) is NoticeOutcome.DUPLICATE
    [refund] = recorded.order.automatic_refunds(attempt_id)
    recorded.order.record_refund(refund.refund_id, succeeded=True, now=clock.now_ms())
    assert recorded.order.attempt(attempt_id).state is AttemptState.LATE_SUCCESS_REFUNDED
    assert await desk.observe(paid) is NoticeOutcome.DUPLICATE
    assert len(recorded.order.automatic_refunds(attempt_id)) == 1


async def test_a_refund_notice_resolves_the_pending_refund() -> None:
    f = Fixture()
    f.provider.answer_pay.set()
    assert await f.desk.observe(f.paid()) is NoticeOutcome.APPLIED
    await f.task
    order = f.recorded.order
    order.request_refund(
        amount_fen=3000, reason="r", supervisor_id="S", terminal_id="T", request_id="q",
        now=f.clock.now_ms(), nonce="ABCDEF",
    )  # fmt: skip
    refund = order.refunds[-1]
    told: list[tuple[bool, str]] = []

    async def record(*, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
        told.append((succeeded, refund_no))
        order.record_refund(refund.refund_id, succeeded=succeeded, now=f.clock.now_ms())

    driver = RefundDriver(f.provider, PLAYBOOK, f.clock, record)
    f.desk.refunds[refund.refund_id] = driver.inbox
    paid = TradeRef(f.attempt_id, 8000, 0, "T-NOTIFIED")
    running = asyncio.create_task(
        f.desk.listening(
            f.desk.refunds, refund.refund_id, driver.inbox,
            driver.run(RefundTicket(refund.refund_id, paid, 3000, f.clock.now_ms())),
        )
    )  # fmt: skip

    def notice(amount: int) -> Notice:
        return Notice(
            Channel.WECHAT, f.attempt_id, "T-NOTIFIED", amount,
            out_refund_no=refund.refund_id, refund_no="RF1", refund_status=RefundStatus.SUCCEEDED,
        )  # fmt: skip

    assert await f.desk.observe(notice(2999)) is NoticeOutcome.MISMATCH
    assert await f.desk.observe(notice(3000)) is NoticeOutcome.APPLIED
    await running
    assert told == [(True, "RF1")]
    assert await f.desk.observe(notice(3000)) is NoticeOutcome.DUPLICATE
    assert order.refunded_fen == 3000


async def _now(value: T) -> T:
    return value


def test_an_attempt_or_refund_id_names_its_order() -> None:
    for sp in ("G1", "SP01", "ABCDEFGH"):  # the compact prefix is cut at 20 characters
        order_id = f"{sp}-K2M9XZ4TBA7Q2P"
        order, _ = Order.create(
            order_id=order_id, business_no="B", service_point_id=sp, window_id="W",
            payer_name="p", lines=LINES, catalog_version="v", now=0, expires_at=10**12,
        )  # fmt: skip
        attempt_id = order.next_attempt_id("ABC123")
        assert order_ids_of(attempt_id, [sp, "OTHER"]) == [order_id]
        assert order_ids_of(f"{attempt_id}R2XYZ789", [sp]) == [order_id]
        assert order_ids_of(f"{attempt_id}R2XYZ789V", [sp]) == [order_id]
        assert order_ids_of(attempt_id, ["OTHER"]) == []
    assert order_ids_of("short", ["G1"]) == []


def test_the_index_of_many_service_points_finds_each_order_and_no_other() -> None:
    """The listener's index over a large deployment: every order found among 2,000
    service points of mixed lengths (with the same candidates as the plain look-up: an
    id of G999 may also name one of G99, and the actor asked tells which exists), and a
    foreign id matches none."""
    points = [f"SP{n:04d}" for n in range(1000)] + [f"G{n}" for n in range(1000)]
    index = OrderIds(points)
    for sp in ("SP0000", "SP0999", "G1", "G999", "G42"):
        order_id = f"{sp}-K2M9XZ4TBA7Q2P"
        order, _ = Order.create(
            order_id=order_id, business_no="B", service_point_id=sp, window_id="W",
            payer_name="p", lines=LINES, catalog_version="v", now=0, expires_at=10**12,
        )  # fmt: skip
        attempt_id = order.next_attempt_id("ABC123")
        found = index.of(attempt_id)
        assert order_id in found and set(found) == set(order_ids_of(attempt_id, points))
        assert order_id in index.of(f"{attempt_id}R2XYZ789")
        assert index.of("X" + attempt_id[1:]) == []  # no such service point
    assert OrderIds(["OTHER"]).of(attempt_id) == []
