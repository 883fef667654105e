"""The Alipay protocol faults of issue 20, each planted as the real gateway shows it.
(The refund-query and bill samples in test_answer_samples.py and the cumulative
refund_fee in test_notification_samples.py plant the others.)"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.channels.alipay.adapter import BEIJING
from orchestrator.channels.alipay.notify import (
    TIME_FORMAT,
    AlipayNotifications,
    NotifyIds,
    signed_text,
)
from orchestrator.config import load_config
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState, PayMode
from orchestrator.notify.listener import NotifyListener
from orchestrator.providers.engine import RefundDriver, RefundTicket, SystemClock, Ticket
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.providers.port import (
    PayCall,
    QrCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.qr_driver import QrDriver
from orchestrator.providers.signing import sign
from orchestrator.reconcile.job import reconcile
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.payer import scan
from tests.conformance.alipay.conftest import (
    APP_ID,
    FakeGateway,
    Keys,
    Served,
    adapter,
    answer,
    resigned,
    serve_alipay,
)
from tests.support import Recorded, code, eventually, provider_id, small_config

# ---- close: ACQ.TRADE_STATUS_ERROR -----------------------------------------------------


def qr_call(out_trade_no: str, now_ms: int, expiry_s: float) -> QrCall:
    return QrCall(
        out_trade_no, 8000, "SP01", "T01", "科目一", now_ms, now_ms + int(expiry_s * 1000)
    )


class TimedOutFirst:
    """The adapter, but Alipay's own timeout_express closes the trade just before
    windowpay's close arrives (the race the fault is about)."""

    def __init__(self, served: Served) -> None:
        self._served = served

    def __getattr__(self, name: str) -> Any:
        return getattr(self._served.adapter, name)

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        await self._served.bank.close(trade.out_trade_no)
        return await self._served.adapter.close(trade)


async def test_a_close_of_a_trade_closed_already_is_done_not_retried(sandbox: Served) -> None:
    """The payer scanned and the trade was closed before windowpay's close came (by its
    own timeout_express): Alipay answers ACQ.TRADE_STATUS_ERROR; a query shows the trade
    closed, so the close is done. It used to be taken as "paid first", the query then
    disagreed, and the close was tried again until reverse_give_up_after_s (10 min)."""
    playbook = small_config(time_scale=0.02).playbook(Channel.ALIPAY)
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.ALIPAY, PayMode.PAYER_SCANS_QR)
    now = recorded.order.attempts[-1].created_at
    ticket = Ticket(
        attempt_id, AttemptState.SUBMITTED, now, None, 8000,
        qr_call=qr_call(attempt_id, now, playbook.qr_expiry_s),
    )  # fmt: skip
    driver = QrDriver(TimedOutFirst(sandbox), playbook, clock, recorded)  # type: ignore[arg-type]
    running = asyncio.create_task(driver.run(ticket))
    attempt = recorded.order.attempts[-1]
    await eventually(lambda: asyncio.sleep(0, attempt.qr_code_url), bool, within=10)
    await scan(attempt.qr_code_url, PayerBehaviour.DECLINE)  # scanned: the trade exists
    await asyncio.wait_for(running, timeout=playbook.reverse_give_up_after_s * 0.8)
    assert AttemptEvent.REVERSED in recorded.events, recorded.events
    assert AttemptEvent.REVERSAL_ABANDONED not in recorded.events
    assert attempt.state is AttemptState.REVERSED
    assert recorded.order.state is OrderState.AWAITING_PAYMENT


async def test_a_close_of_a_paid_trade_still_says_paid(sandbox: Served) -> None:
    now = int(time.time() * 1000)
    call = qr_call(provider_id("Q"), now, 60)
    made = await sandbox.adapter.create_qr(call)
    await scan(made.code_url, PayerBehaviour.PAY)
    closed = await sandbox.adapter.close(call.trade)
    assert closed.status is ReverseStatus.PAID


# ---- QR: a failed try leaves the precreate trade WAIT_BUYER_PAY ------------------------


async def test_a_declined_try_at_a_code_leaves_the_trade_waiting(sandbox: Served) -> None:
    now = int(time.time() * 1000)
    call = qr_call(provider_id("Q"), now, 60)
    made = await sandbox.adapter.create_qr(call)
    await scan(made.code_url, PayerBehaviour.DECLINE)
    found = await sandbox.adapter.query(call.trade)
    assert (found.status, found.reason) == (TradeStatus.CONFIRMING, "WAIT_BUYER_PAY")


# ---- bill: isp.bill_not_exist ----------------------------------------------------------


async def test_a_past_day_without_trades_reconciles_against_an_empty_bill(
    tmp_path: Path,
) -> None:
    served, runner = await serve_alipay(tmp_path)
    try:
        day = date.today() - timedelta(days=3)
        report = await reconcile(
            day, [], {Channel.ALIPAY: served.adapter}, ZoneInfo("Asia/Shanghai"), heal=None
        )
        assert report.failures == {}
        assert report.matches[Channel.ALIPAY].bill_rows == 0
        assert report.unexplained == 0
        today = datetime.now(BEIJING).date()
        report = await reconcile(
            today, [], {Channel.ALIPAY: served.adapter}, ZoneInfo("Asia/Shanghai"), heal=None
        )
        # not made yet: reported as not ready ("run again then"), not as a failure
        assert Channel.ALIPAY in report.not_ready and report.failures == {}
        assert report.unexplained == 0
    finally:
        await served.client.close()
        await runner.cleanup()


# ---- notifications: resent with the same notify_id -------------------------------------

OUT_TRADE_NO = "E1K2M9XZ4TBA7Q2PP1ABC123"  # order E1-K2M9XZ4TBA7Q2P, its first attempt
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class FakeActor:
    def __init__(self, *outcomes: NoticeOutcome) -> None:
        self.outcomes = list(outcomes)
        self.told: list[Notice] = []

    async def observe(self, notice: Notice) -> NoticeOutcome:
        self.told.append(notice)
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]


def paid_notification(keys: Keys, sent_at: float, notify_id: str) -> bytes:
    params = {
        "notify_time": datetime.fromtimestamp(sent_at, BEIJING).strftime(TIME_FORMAT),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": "2026010222001",
        "out_trade_no": OUT_TRADE_NO,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "80.00",
    }
    params["sign"] = sign(keys.alipay, signed_text(params))
    return urlencode(params).encode()


async def no_refunds(out_trade_no: str, out_request_no: str) -> None:
    return None


async def listening(keys: Keys, actor: FakeActor, now: float) -> tuple[NotifyListener, TestClient]:
    listener = NotifyListener()
    verifier = AlipayNotifications(
        keys.alipay.public_key(), APP_ID, 300, lambda: now, refunds=no_refunds
    )
    listener.attach({Channel.ALIPAY: verifier}, {"E1": actor})
    client = TestClient(TestServer(listener.app))
    await client.start_server()
    return listener, client


async def post(client: TestClient, body: bytes) -> str:
    answer = await client.post("/notify/alipay", data=body, headers=FORM)
    assert answer.status == 200
    return await answer.text()


@pytest.mark.parametrize("late_s", [4 * 60, 14 * 60, 24 * 60, 84 * 60, 25 * 3600])
async def test_alipays_resend_of_an_old_notification_is_taken(keys: Keys, late_s: float) -> None:
    """Alipay resends at 4 m, 10 m, 10 m, 1 h, 2 h, 6 h, 15 h after the first send: a
    signed notification sent that long ago is read (it used to be refused past 300 s)."""
    now = time.time()
    actor = FakeActor(NoticeOutcome.APPLIED)
    _, client = await listening(keys, actor, now)
    try:
        assert await post(client, paid_notification(keys, now - late_s, "n1")) == "success"
    finally:
        await client.close()
    assert [n.out_trade_no for n in actor.told] == [OUT_TRADE_NO]


async def test_a_notify_id_answered_success_is_acknowledged_again_and_not_fed_twice(
    keys: Keys,
) -> None:
    now = time.time()
    actor = FakeActor(NoticeOutcome.APPLIED)
    _, client = await listening(keys, actor, now)
    body = paid_notification(keys, now - 5, "n2")
    try:
        assert await post(client, body) == "success"
        assert await post(client, body) == "success"  # a replay: Alipay must stop sending
        assert await post(client, paid_notification(keys, now - 4, "n3")) == "success"
    finally:
        await client.close()
    assert len(actor.told) == 2  # n2 once, n3 once


async def test_a_notification_answered_fail_is_fed_again_when_resent(keys: Keys) -> None:
    """Deferred (the attempt's driver was not ready): its resend must still be applied."""
    now = time.time()
    actor = FakeActor(NoticeOutcome.DEFERRED, NoticeOutcome.APPLIED)
    _, client = await listening(keys, actor, now)
    body = paid_notification(keys, now - 5, "n4")
    try:
        assert await post(client, body) == "fail"
        assert await post(client, body) == "success"
        assert await post(client, body) == "success"
    finally:
        await client.close()
    assert len(actor.told) == 2


def test_remembered_notify_ids_are_bounded_in_number_and_time() -> None:
    ids = NotifyIds(keep_s=100, most=2)
    for n, at in (("a", 0), ("b", 1), ("c", 2)):
        ids.remember(n, at)
    assert (ids.answered("a", 3), ids.answered("b", 3), ids.answered("c", 3)) == (
        False,
        True,
        True,
    )
    assert not ids.answered("b", 101) and ids.answered("c", 101)
    assert len(ids) == 1


# ---- refund: final refusals that were asked again forever --------------------------------


class StepClock:
    """A driver's clock that moves on 5 s at every sleep and sleeps for no real time."""

    def __init__(self, rounds: int = 30) -> None:
        self.ms = 1_700_000_000_000
        self.sleeps = 0
        self.rounds = rounds
        self.went_round = asyncio.Event()  # set after `rounds` sleeps

    def now_ms(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.ms += int(seconds * 1000)
        if self.sleeps >= self.rounds:
            self.went_round.set()
        await asyncio.sleep(0)


def refund_gateway(keys: Keys, refusal: str) -> FakeGateway:
    """The refund is refused with the sample `refusal`; its query finds no refund."""
    refused = answer(refusal)
    empty = answer("refund_query_empty")
    return FakeGateway(
        {
            "alipay.trade.refund": [resigned(refused, "alipay_trade_refund_response", keys.alipay)],
            "alipay.trade.fastpay.refund.query": [
                resigned(empty, "alipay_trade_fastpay_refund_query_response", keys.alipay)
            ],
        }
    )


@pytest.mark.parametrize(
    ("refusal", "sub_code"),
    [
        ("refund_fee_err_live", "ACQ.REASON_TRADE_REFUND_FEE_ERR"),
        ("refund_trade_has_finished", "ACQ.TRADE_HAS_FINISHED"),
    ],
)
async def test_a_refund_refused_for_good_ends_failed(
    keys: Keys, refusal: str, sub_code: str
) -> None:
    """The refusal used to be pending; the refund query then found no refund, the refund
    was sent again, refused again, and so on without end."""
    gateway = refund_gateway(keys, refusal)
    alipay = adapter(gateway, keys.alipay.public_key(), keys.app)
    recorded: list[tuple[bool, str]] = []

    async def record(*, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
        recorded.append((succeeded, reason))

    clock = StepClock()
    driver = RefundDriver(alipay, load_config().playbook(Channel.ALIPAY), clock, record)
    trade = TradeRef(OUT_TRADE_NO, 8000, 0, "2026010222001")
    run = driver.run(RefundTicket("E1K2M9XZ4TBA7Q2PR1", trade, 9000, clock.now_ms()))
    await asyncio.wait_for(run, timeout=5)
    assert recorded == [(False, sub_code)]
    assert len(gateway.sent) == 1 and clock.sleeps == 0  # the refusal is the last word


async def test_a_discordant_repeat_request_is_left_pending_for_a_person(keys: Keys) -> None:
    """ "不一致的请求": the number was used before with other content, and that refund may
    have gone through. Never FAILED: it stays pending, is reported overdue, and the
    overdue report names the reason."""
    refused = (
        answer("refund_declined_balance")
        .replace("ACQ.SELLER_BALANCE_NOT_ENOUGH", "ACQ.DISCORDANT_REPEAT_REQUEST")
        .replace("卖家余额不足", "不一致的请求")
    )
    gateway = FakeGateway(
        {
            "alipay.trade.refund": [resigned(refused, "alipay_trade_refund_response", keys.alipay)],
            "alipay.trade.fastpay.refund.query": [
                resigned(
                    answer("refund_query_empty"),
                    "alipay_trade_fastpay_refund_query_response",
                    keys.alipay,
                )
            ],
        }
    )
    alipay = adapter(gateway, keys.alipay.public_key(), keys.app)
    recorded: list[bool] = []

    async def record(*, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
        recorded.append(succeeded)

    clock = StepClock()
    flags: list[bool] = []
    driver = RefundDriver(
        alipay,
        load_config().playbook(Channel.ALIPAY),
        clock,
        record,
        alert_after_s=60,
        overdue=flags.append,
    )
    trade = TradeRef(OUT_TRADE_NO, 8000, 0, "2026010222001")
    task = asyncio.create_task(
        driver.run(RefundTicket("E1K2M9XZ4TBA7Q2PR1", trade, 100, clock.now_ms()))
    )
    await asyncio.wait_for(clock.went_round.wait(), timeout=5)
    assert not task.done() and recorded == []
    assert flags == [True] and driver.last_reason == "ACQ.DISCORDANT_REPEAT_REQUEST"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_sandbox_refuses_an_over_refund_as_the_live_gateway(sandbox: Served) -> None:
    call = PayCall(provider_id("S"), code(Channel.ALIPAY, "0000"), 8000, "SP01", "T01", "科目一")
    assert (await sandbox.adapter.pay(call)).status is TradeStatus.PAID
    over = RefundCall(call.trade, provider_id("R"), 8001, 0)
    assert await sandbox.adapter.refund(over) == RefundAnswer(
        RefundStatus.FAILED, reason="ACQ.REASON_TRADE_REFUND_FEE_ERR"
    )
