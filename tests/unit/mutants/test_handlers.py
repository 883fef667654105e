"""The service-point core's refusals, each with its code and its whole message, written
for the mutants of servicepoint/handlers.py that `make mutate` found alive."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime

import orjson
import pytest

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import parse_config
from orchestrator.domain.auth_codes import auth_code_digest, mask_auth_code
from orchestrator.domain.calendar import local_day
from orchestrator.domain.commands import (
    Accepted,
    CancelOrder,
    CreateOrder,
    Done,
    Pay,
    RefundOrder,
    Rejected,
    SettleLateSuccess,
)
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.order import Order, Refund
from orchestrator.domain.states import Channel, PayMode
from orchestrator.providers.engine import SystemClock
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store import keys
from orchestrator.store.memory import MemoryReadBatch, MemoryStore
from orchestrator.store.port import Read
from tests.core_harness import LINES, Harness, one, order_of, settled
from tests.integration.test_store_contract import Recording
from tests.support import (
    PROVIDER_CHANNELS,
    eventually,
    new_id,
    small_config,
    small_config_data,
)
from tests.unit.test_recall import RecordHarness, paid


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(MemoryStore(), small_config(service_points=2, windows=4))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


def refused(code: ErrorCode, message: str) -> Rejected:
    return Rejected(code, message)


async def test_a_reused_request_id_and_an_unknown_order_are_named(harness: Harness) -> None:
    core = await harness.core()
    create = harness.create()
    await one(core, create)
    other = CreateOrder(create.request_id, create.business_no, harness.window(2), "张三", LINES)
    assert await one(core, other) == refused(
        ErrorCode.ALREADY_EXISTS,
        f"request_id {create.request_id} was already used with different parameters",
    )
    assert keys.request_claim(create.request_id) in harness.store.strings  # the first's
    missing = f"{harness.sp}-0123456789ABCD"
    assert await one(core, CancelOrder(new_id(), missing, "x")) == refused(
        ErrorCode.NOT_FOUND, f"order {missing} not found"
    )


async def test_a_business_case_with_an_open_order_refuses_other_items(harness: Harness) -> None:
    core = await harness.core()
    first = order_of(await one(core, harness.create(business_no="CASE-9")))["order_id"]
    assert await one(core, harness.create(2, business_no="CASE-9")) == refused(
        ErrorCode.FAILED_PRECONDITION,
        f"business case CASE-9 already has order {first} (AWAITING_PAYMENT) with other fee "
        "items or window",
    )
    again = await one(core, harness.create(business_no="CASE-9"))
    assert isinstance(again, Done) and order_of(again)["order_id"] == first


async def test_pay_refusals_are_named(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    wrong_window = harness.pay(order_id, window=2)
    assert await one(core, wrong_window) == refused(
        ErrorCode.PERMISSION_DENIED,
        f"terminal {harness.sp}T2 is bound to window {harness.window(2)}, not to "
        f"{harness.window(1)} of order {order_id}",
    )
    second = order_of(await one(core, harness.create(1)))["order_id"]
    paying = harness.pay(order_id, ending="1111")
    accepted = await one(core, paying)
    assert isinstance(accepted, Accepted)
    assert await one(core, harness.pay(second)) == refused(
        ErrorCode.FAILED_PRECONDITION,
        f"window {harness.window(1)} is busy: payment {accepted.attempt_id} is still in flight",
    )
    await settled(harness, order_id)
    reused = Pay(
        new_id(), f"{harness.sp}T1", harness.window(1), second, Channel.WECHAT,
        paying.auth_code, 0,
    )  # fmt: skip
    assert await one(core, reused) == refused(
        ErrorCode.FAILED_PRECONDITION,
        "this auth code was already used; ask the payer to refresh it",
    )
    # the same request again is its replay, not a reuse
    assert isinstance(await one(core, paying), Done)


async def test_cancel_is_once_and_only_while_payable(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    cancelled = await one(core, CancelOrder(new_id(), order_id, "withdrawn"))
    assert isinstance(cancelled, Done) and order_of(cancelled)["state"] == "CANCELLED"
    assert order_of(cancelled)["cancel_reason"] == "withdrawn"
    again = await one(core, CancelOrder(new_id(), order_id, "again"))
    assert isinstance(again, Done) and order_of(again)["cancel_reason"] == "withdrawn"
    paid = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(paid, Channel.CASH))
    assert await one(core, CancelOrder(new_id(), paid, "late")) == refused(
        ErrorCode.FAILED_PRECONDITION, f"order {paid} is PAID; cannot cancel"
    )


async def test_refunds_are_made_where_the_money_is(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id, Channel.CASH))
    other_sp = harness.config.deployment.service_points[1].id
    elsewhere = RefundOrder(new_id(), f"{other_sp}T1", f"{other_sp}W1", order_id, 100, "r", "S1")
    assert await one(core, elsewhere) == refused(
        ErrorCode.PERMISSION_DENIED,
        f"terminal {other_sp}T1 is not at service point {harness.sp}, where order "
        f"{order_id} was paid",
    )
    other_drawer = RefundOrder(
        new_id(), f"{harness.sp}T2", harness.window(2), order_id, 100, "r", "S1"
    )
    assert await one(core, other_drawer) == refused(
        ErrorCode.PERMISSION_DENIED,
        f"order {order_id} was paid in cash at window {harness.window(1)}: its cash refund "
        f"is paid from that window's drawer, so make it at a terminal of {harness.window(1)}, "
        f"not at {harness.window(2)}",
    )
    done = await one(core, harness.refund(order_id, 100))
    assert isinstance(done, Done)
    [refund] = order_of(done)["refunds"]
    assert (refund["state"], refund["amount_fen"], order_of(done)["refunded_fen"]) == (
        "SUCCEEDED", 100, 100,
    )  # fmt: skip


async def test_a_card_order_is_refunded_from_any_window_of_its_point(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id))
    await settled(harness, order_id)
    refund = RefundOrder(new_id(), f"{harness.sp}T2", harness.window(2), order_id, 300, "r", "S1")
    accepted = await one(core, refund)
    assert isinstance(accepted, Accepted) and accepted.refund_id
    replay = await one(core, refund)
    assert isinstance(replay, (Accepted, Done))
    order = await settled(harness, order_id)
    assert order.refunded_fen == 300


async def test_the_paying_attempt_is_no_late_success(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id))
    order = await settled(harness, order_id)
    settle = SettleLateSuccess(new_id(), order_id, order.paid_by, "T1", "bill")
    assert await one(core, settle) == refused(
        ErrorCode.FAILED_PRECONDITION, f"attempt {order.paid_by} is the order's payment"
    )


async def test_a_late_success_is_given_back_once(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id, ending="3333"))  # declined
    declined = (await settled(harness, order_id)).attempts[0]
    settle = SettleLateSuccess(new_id(), order_id, declined.attempt_id, "W9", "bill")
    done = await one(core, settle)
    assert isinstance(done, Done)
    [refund] = order_of(done)["refunds"]
    assert (refund["refund_id"], refund["automatic"], refund["reason"]) == (
        f"{declined.attempt_id}L1", True, "bill",
    )  # fmt: skip
    again = await one(core, SettleLateSuccess(new_id(), order_id, declined.attempt_id, "W9", "b"))
    assert isinstance(again, Done) and len(order_of(again)["refunds"]) == 1


async def test_a_conflict_is_counted_by_command_type(harness: Harness) -> None:
    observer = Recording()
    core = await harness.core(observer=observer)
    create = harness.create()
    await one(core, create)
    other = CreateOrder(create.request_id, create.business_no, harness.window(2), "张三", LINES)
    await one(core, other)
    assert observer.told == [("idempotency", "CreateOrder", "conflict")]


async def test_a_card_refund_records_who_asked_and_its_replay_names_it(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id))
    await settled(harness, order_id)
    refund = RefundOrder(
        new_id(), f"{harness.sp}T2", harness.window(2), order_id, 300, "多收", "S7"
    )
    accepted = await one(core, refund)
    assert isinstance(accepted, Accepted)
    [asked] = order_of(accepted)["refunds"]
    assert (asked["refund_id"], asked["reason"], asked["supervisor_id"], asked["terminal_id"]) == (
        accepted.refund_id, "多收", "S7", f"{harness.sp}T2",
    )  # fmt: skip
    assert asked["request_id"] == refund.request_id
    replay = await one(core, refund)
    assert isinstance(replay, (Accepted, Done))
    if isinstance(replay, Accepted):
        assert replay.refund_id == accepted.refund_id
    assert [r["refund_id"] for r in order_of(replay)["refunds"]] == [accepted.refund_id]


async def test_a_cash_refund_replays_its_answer(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id, Channel.CASH))
    refund = harness.refund(order_id, 100)
    first = await one(core, refund)
    assert await one(core, refund) == first


async def test_a_late_success_keeps_its_trade_number_and_is_given_back(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id, ending="3333"))
    declined = (await settled(harness, order_id)).attempts[0]
    settle = SettleLateSuccess(new_id(), order_id, declined.attempt_id, "W9", "bill")
    first = await one(core, settle)
    assert isinstance(first, Done)
    assert order_of(first)["attempts"][0]["provider_trade_no"] == "W9"
    assert await one(core, settle) == first  # the stored answer, replayed
    # the refund is driven to the provider's word (the sandbox took nothing: it refuses)
    order = await settled(harness, order_id)
    assert [r.state.value for r in order.refunds] == ["FAILED"]


class Told(Recording):
    """Also keeps the refunds that ended and the late successes found."""

    def refund_ended(self, order: Order, refund: Refund) -> None:
        super().refund_ended(order, refund)
        self.told.append(("refund", refund.refund_id, refund.state.value))

    def late_success(self, channel: Channel) -> None:
        super().late_success(channel)
        self.told.append(("late", channel.value))


def stored_answer(harness: Harness, request_id: str) -> bytes:
    return harness.store.strings[keys.response(harness.sp, request_id)]


def header(order_id: str, attempt_id: str = "", refund_id: str = "") -> bytes:
    fields = {"order_id": order_id, "attempt_id": attempt_id, "refund_id": refund_id}
    return orjson.dumps(fields) + b"\n"


async def test_a_payment_under_way_keeps_an_empty_answer_naming_its_attempt(
    harness: Harness,
) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    pay = harness.pay(order_id, ending="7777")  # the payer confirms later: still under way
    accepted = await one(core, pay)
    assert isinstance(accepted, Accepted)
    assert stored_answer(harness, pay.request_id) == header(order_id, accepted.attempt_id)
    [attempt] = order_of(accepted)["attempts"]
    assert (attempt["attempt_id"], attempt["terminal_id"], attempt["auth_code_masked"]) == (
        accepted.attempt_id, pay.terminal_id, mask_auth_code(pay.auth_code),
    )  # fmt: skip
    replay = await one(core, pay)  # the same request again, while the payer confirms
    assert isinstance(replay, Accepted), replay
    assert replay.attempt_id == accepted.attempt_id
    assert order_of(replay)["order_id"] == order_id
    await settled(harness, order_id)


async def test_a_cash_payment_and_a_cancel_keep_their_answers(harness: Harness) -> None:
    observer = Told()
    core = await harness.core(observer=observer)
    paid_id = order_of(await one(core, harness.create()))["order_id"]
    pay = harness.pay(paid_id, Channel.CASH)
    done = await one(core, pay)
    assert isinstance(done, Done)
    [attempt] = order_of(done)["attempts"]
    assert attempt["auth_code_masked"] == ""  # cash has no code
    assert stored_answer(harness, pay.request_id) == header(paid_id, attempt["attempt_id"]) + bytes(
        done.order
    )
    assert ("attempt", attempt["attempt_id"], "SUCCEEDED") in observer.told
    cancelled_id = order_of(await one(core, harness.create(2)))["order_id"]
    cancel = CancelOrder(new_id(), cancelled_id, "办错了", "principal: clerk7")
    done = await one(core, cancel)
    assert isinstance(done, Done)
    assert stored_answer(harness, cancel.request_id) == header(cancelled_id) + bytes(done.order)


async def test_a_cash_refund_is_told_and_its_answer_kept(harness: Harness) -> None:
    observer = Told()
    core = await harness.core(observer=observer)
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id, Channel.CASH))
    refund = harness.refund(order_id, 100)
    done = await one(core, refund)
    assert isinstance(done, Done)
    [given] = order_of(done)["refunds"]
    assert stored_answer(harness, refund.request_id) == header(
        order_id, refund_id=given["refund_id"]
    ) + bytes(done.order)
    await eventually(lambda: _told(observer), lambda told: ("refund",) in {t[:1] for t in told})
    assert ("refund", given["refund_id"], "SUCCEEDED") in observer.told


async def test_a_card_refund_under_way_keeps_an_empty_answer_naming_it(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id))
    await settled(harness, order_id)
    refund = harness.refund(order_id, 100)
    accepted = await one(core, refund)
    assert isinstance(accepted, Accepted)
    # empty while the refund is under way, the order once it ended: the header either way
    expected = header(order_id, refund_id=accepted.refund_id)
    assert stored_answer(harness, refund.request_id).startswith(expected)
    await settled(harness, order_id)


async def test_a_late_success_is_told_by_channel_and_its_answer_kept(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.servicepoint.handlers")
    observer = Told()
    core = await harness.core(observer=observer)
    order_id = order_of(await one(core, harness.create()))["order_id"]
    await one(core, harness.pay(order_id, ending="3333"))  # declined
    declined = (await settled(harness, order_id)).attempts[0]
    settle = SettleLateSuccess(new_id(), order_id, declined.attempt_id, "W9", "bill")
    done = await one(core, settle)
    assert isinstance(done, Done)
    [refund] = order_of(done)["refunds"]
    assert stored_answer(harness, settle.request_id) == header(
        order_id, refund_id=refund["refund_id"]
    ) + bytes(done.order)
    await eventually(lambda: _told(observer), lambda told: ("late", "WECHAT") in told)
    [logged] = [r for r in caplog.records if r.name == "orchestrator.servicepoint.handlers"]
    assert (logged.levelname, logged.getMessage()) == (
        "WARNING", "late success found by reconciliation: refunding",
    )  # fmt: skip
    assert (logged.order_id, logged.attempt_id) == (order_id, declined.attempt_id)
    await settled(harness, order_id)


async def _told(observer: Told) -> list[tuple[str, ...]]:
    return observer.told


async def test_a_conflicting_create_gives_back_the_business_case_it_claimed(
    harness: Harness,
) -> None:
    core = await harness.core()
    create = harness.create(business_no="CASE-A")
    await one(core, create)
    other = CreateOrder(create.request_id, "CASE-B", harness.window(1), "张三", LINES)
    rejected = await one(core, other)
    assert isinstance(rejected, Rejected) and rejected.code is ErrorCode.ALREADY_EXISTS
    assert keys.business_case("CASE-B") not in harness.store.strings  # given back
    assert keys.business_case("CASE-A") in harness.store.strings  # the first's, kept
    assert keys.request_claim(create.request_id) in harness.store.strings


class SetClock(SystemClock):
    """The system's clock, or a time set by the test."""

    def __init__(self) -> None:
        self.at: int | None = None

    def now_ms(self) -> int:
        return super().now_ms() if self.at is None else self.at


async def test_a_payment_at_the_orders_expiry_is_refused_and_the_order_expires(
    harness: Harness,
) -> None:
    clock = SetClock()
    core = await harness.core(clock=clock)
    created = order_of(await one(core, harness.create()))
    clock.at = created["expires_at"]  # the very moment it expires
    assert await one(core, harness.pay(created["order_id"])) == refused(
        ErrorCode.FAILED_PRECONDITION,
        f"order {created['order_id']} expired and can no longer be paid",
    )
    order = await harness.stored(created["order_id"])
    assert order.state.value == "EXPIRED"


async def test_bad_payments_are_refused_before_anything_is_claimed(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    terminal, window = f"{harness.sp}T1", harness.window(1)
    qr = PayMode.PAYER_SCANS_QR
    wechat_code = harness.pay(order_id).auth_code
    for pay, message in (
        (Pay(new_id(), terminal, window, order_id, Channel.CASH, "", 20000, qr),
         "cash is paid at the counter, not by a QR code"),
        (Pay(new_id(), terminal, window, order_id, Channel.WECHAT, wechat_code, 0, qr),
         "no auth_code when the payer scans a QR code"),
        (Pay(new_id(), terminal, window, order_id, Channel.CASH, "", 0),
         "cash_received_fen is required for a cash payment"),
        (Pay(new_id(), terminal, window, order_id, Channel.WECHAT, wechat_code, 100),
         "cash_received_fen applies to cash payments only"),
    ):  # fmt: skip
        assert await one(core, pay) == refused(ErrorCode.INVALID_ARGUMENT, message)
        assert keys.request_claim(pay.request_id) not in harness.store.strings
    # one fen of cash passes the check, and the order refuses it as too little
    short = Pay(new_id(), terminal, window, order_id, Channel.CASH, "", 1)
    assert await one(core, short) == refused(
        ErrorCode.INVALID_ARGUMENT, "cash received 1 fen is less than the 12000 fen due"
    )


async def test_a_qr_payment_claims_no_auth_code(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    pay = Pay(
        new_id(), f"{harness.sp}T1", harness.window(1), order_id, Channel.WECHAT, "", 0,
        PayMode.PAYER_SCANS_QR,
    )  # fmt: skip
    accepted = await one(core, pay)
    assert isinstance(accepted, Accepted)
    assert order_of(accepted)["attempts"][0]["mode"] == "PAYER_SCANS_QR"
    assert keys.auth_code(auth_code_digest("")) not in harness.store.strings
    await settled(harness, order_id)


async def test_refunds_and_late_successes_refuse_bad_input_by_name(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    await one(core, harness.pay(order_id, Channel.CASH))
    terminal, window = f"{harness.sp}T1", harness.window(1)
    too_long = "退" * 201
    for command, message in (
        (RefundOrder(new_id(), terminal, window, order_id, 100, "r", ""),
         "supervisor_id is required"),
        (RefundOrder(new_id(), terminal, window, order_id, 100, too_long, "S1"),
         "reason is longer than 200 characters"),
        (RefundOrder(new_id(), terminal, window, order_id, 100, "  ", "S1"), "reason is required"),
        (RefundOrder(new_id(), terminal, window, order_id, 0, "r", "S1"),
         "amount_fen of a refund must be positive"),
        (SettleLateSuccess(new_id(), order_id, "", "W9", "bill"), "attempt_id is required"),
        (SettleLateSuccess(new_id(), order_id, "A1", "W9", too_long),
         "reason is longer than 200 characters"),
        (SettleLateSuccess(new_id(), order_id, "A1", "W9", " "), "reason is required"),
        (CancelOrder(new_id(), order_id, too_long), "reason is longer than 200 characters"),
    ):  # fmt: skip
        assert await one(core, command) == refused(ErrorCode.INVALID_ARGUMENT, message)
    # a refund of one fen is a refund, at the limit a reason is a reason
    done = await one(core, RefundOrder(new_id(), terminal, window, order_id, 1, "r" * 200, "S1"))
    assert isinstance(done, Done)
    assert [r["amount_fen"] for r in order_of(done)["refunds"]] == [1]


async def test_a_cancel_needs_no_reason_and_journals_who_cancelled(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create()))["order_id"]
    done = await one(core, CancelOrder(new_id(), order_id, "", "principal: clerk7"))
    assert isinstance(done, Done) and order_of(done)["state"] == "CANCELLED"
    last = orjson.loads((await harness.store.journal(order_id))[-1])
    assert (last["what"], last["by"]) == ("cancelled", "principal: clerk7")


async def test_a_replay_after_its_claim_lapsed_claims_the_request_id_again(
    harness: Harness,
) -> None:
    """The request id's claim is taken a moment before its answer is stored, so it may
    lapse first: the replay then holds it again, for the answer's time."""
    core = await harness.core()
    create = harness.create()
    created = await one(core, create)
    pay = harness.pay(order_of(created)["order_id"], Channel.CASH)
    paid = await one(core, pay)
    for command, first in ((create, created), (pay, paid)):
        claim = keys.request_claim(command.request_id)
        del harness.store.strings[claim]
        assert await one(core, command) == first
        assert claim in harness.store.strings
    # an auth code's claim lapsed: the replay, which takes it again, gives it back
    card = harness.pay(order_of(await one(core, harness.create(2)))["order_id"], window=2)
    await one(core, card)
    answer = await settled(harness, card.order_id)
    code_claim = keys.auth_code(auth_code_digest(card.auth_code))
    del harness.store.strings[code_claim]
    replay = await one(core, card)
    assert order_of(replay)["paid_by"] == answer.paid_by
    assert code_claim not in harness.store.strings


async def test_a_refused_create_gives_back_its_request_id(harness: Harness) -> None:
    core = await harness.core()
    await one(core, harness.create(business_no="CASE-R"))
    other_items = harness.create(2, business_no="CASE-R")
    rejected = await one(core, other_items)
    assert isinstance(rejected, Rejected) and rejected.code is ErrorCode.FAILED_PRECONDITION
    assert keys.request_claim(other_items.request_id) not in harness.store.strings


async def test_a_refused_payment_gives_back_its_auth_code(harness: Harness) -> None:
    core = await harness.core()
    order_id = order_of(await one(core, harness.create(1)))["order_id"]
    wrong_window = harness.pay(order_id, window=2)
    rejected = await one(core, wrong_window)
    assert isinstance(rejected, Rejected) and rejected.code is ErrorCode.PERMISSION_DENIED
    digest = auth_code_digest(wrong_window.auth_code)
    assert keys.auth_code(digest) not in harness.store.strings
    same_code = Pay(
        new_id(), f"{harness.sp}T1", harness.window(1), order_id, Channel.WECHAT,
        wrong_window.auth_code, 0,
    )  # fmt: skip
    assert isinstance(await one(core, same_code), Accepted)
    await settled(harness, order_id)


async def test_a_replay_naming_an_order_not_in_memory_reads_it(harness: Harness) -> None:
    """A stored answer that names an attempt and holds no order (as while the payment was
    under way), replayed by the next core, which loads only open orders: the paid order
    is read from the store for the answer, or named not found when the store lost it."""
    first = await harness.core()
    order_ids = [order_of(await one(first, harness.create(n)))["order_id"] for n in (1, 2)]
    pays = [harness.pay(order_id, window=n) for n, order_id in enumerate(order_ids, 1)]
    attempts = []
    for pay in pays:
        accepted = await one(first, pay)
        assert isinstance(accepted, Accepted)
        attempts.append(accepted.attempt_id)
        await settled(harness, pay.order_id)
        stored = keys.response(harness.sp, pay.request_id)
        harness.store.strings[stored] = header(pay.order_id, accepted.attempt_id)
    await first.stop()
    harness.cores.remove(first)
    harness.store.hashes.pop(keys.order(harness.sp, order_ids[1]))
    core = await harness.core()
    replay = await one(core, pays[0])
    assert isinstance(replay, Accepted) and replay.attempt_id == attempts[0]
    assert (order_of(replay)["order_id"], order_of(replay)["state"]) == (order_ids[0], "PAID")
    assert await one(core, pays[1]) == refused(
        ErrorCode.NOT_FOUND, f"order {order_ids[1]} not found"
    )


async def test_an_order_of_a_point_not_served_here_is_not_found(harness: Harness) -> None:
    core = await harness.core()
    elsewhere = "ZZ9-0123456789ABCD"
    assert await one(core, CancelOrder(new_id(), elsewhere, "x")) == refused(
        ErrorCode.NOT_FOUND, f"order {elsewhere} not found"
    )


async def test_an_open_order_the_store_lost_is_named_while_it_is_reloaded(
    harness: Harness,
) -> None:
    first = await harness.core()
    order_id = order_of(await one(first, harness.create(business_no="CASE-L")))["order_id"]
    await first.stop()
    harness.cores.remove(first)
    del harness.store.hashes[keys.order(harness.sp, order_id)]  # still in the open set
    core = await harness.core()
    assert await one(core, CancelOrder(new_id(), order_id, "x")) == refused(
        ErrorCode.UNAVAILABLE,
        f"order {order_id} is being reloaded from the record; try again shortly",
    )
    assert await one(core, harness.create(business_no="CASE-L")) == refused(
        ErrorCode.UNAVAILABLE,
        f"order {order_id} is being reloaded from the record; try again shortly",
    )


@pytest.fixture
async def recording() -> AsyncIterator[RecordHarness]:
    h = RecordHarness()
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


async def test_a_refund_recalls_its_order_from_the_record_by_its_id(
    recording: RecordHarness,
) -> None:
    core = await recording.recording_core()
    order_id = await paid(recording, core)
    recording.leaves(order_id)
    assert isinstance(await one(core, recording.refund(order_id, 3000)), Accepted)
    assert recording.record.asked == [order_id]
    assert (await settled(recording, order_id)).refunded_fen == 3000


async def core_of(harness: Harness, sp: str) -> ServicePointCore:
    """A core serving only service point `sp`."""
    providers = {ch: SandboxProvider(ch, harness.banks[ch]) for ch in PROVIDER_CHANNELS}
    core = ServicePointCore(
        [sp], harness.config, harness.store, providers, on_fatal=harness.fatal.append
    )
    await core.start()
    harness.cores.append(core)
    return core


async def test_a_business_case_open_at_another_point_is_named_with_it(harness: Harness) -> None:
    other_sp = harness.config.deployment.service_points[1].id
    there, here = await core_of(harness, other_sp), await core_of(harness, harness.sp)
    opened = CreateOrder(new_id(), "CASE-X", f"{other_sp}W1", "张三", LINES)
    order_id = order_of(await one(there, opened))["order_id"]
    assert await one(here, harness.create(business_no="CASE-X")) == refused(
        ErrorCode.FAILED_PRECONDITION,
        f"business case CASE-X already has order {order_id}, open at service point {other_sp}",
    )


async def test_a_business_case_whose_order_is_recorded(harness: Harness) -> None:
    """The drainer marks a case's order recorded: while the order is still in the store
    (or in memory) the case answers with it; once gone, the case names it in the record."""
    first = await harness.core()
    create = harness.create(business_no="CASE-R")
    order_id = order_of(await one(first, create))["order_id"]
    await one(first, harness.pay(order_id, Channel.CASH))
    case = keys.business_case("CASE-R")
    harness.store.strings[case] = (order_id + keys.RECORDED).encode()
    again = await one(first, harness.create(business_no="CASE-R"))  # in memory
    assert isinstance(again, Done) and order_of(again)["order_id"] == order_id
    await first.stop()
    harness.cores.remove(first)
    core = await harness.core()
    again = await one(core, harness.create(business_no="CASE-R"))  # read from the store
    assert isinstance(again, Done) and order_of(again)["order_id"] == order_id
    await core.stop()
    harness.cores.remove(core)
    del harness.store.hashes[keys.order(harness.sp, order_id)]
    last = await harness.core()
    assert await one(last, harness.create(business_no="CASE-R")) == refused(
        ErrorCode.FAILED_PRECONDITION,
        f"business case CASE-R already has order {order_id} (in the record)",
    )


async def test_a_created_order_keeps_what_its_creator_sent(harness: Harness) -> None:
    core = await harness.core()
    create = CreateOrder(new_id(), "CASE-C", harness.window(1), "张三", LINES, "principal: bizA")
    created = order_of(await one(core, create))
    settings = harness.config.settings
    catalog = harness.config.fees.in_force_on(
        local_day(created["created_at"], settings.zone).date()
    )
    assert (created["business_no"], created["created_by"], created["catalog_version"]) == (
        "CASE-C", "principal: bizA", catalog.version,
    )  # fmt: skip
    # the same case again from its creator is its order; the answer is kept for the request
    same = CreateOrder(new_id(), "CASE-C", harness.window(1), "张三", LINES, "principal: bizA")
    again = await one(core, same)
    assert isinstance(again, Done) and order_of(again)["order_id"] == created["order_id"]
    assert stored_answer(harness, same.request_id) == header(created["order_id"]) + bytes(
        again.order
    )
    other = CreateOrder(new_id(), "CASE-C", harness.window(1), "张三", LINES, "principal: bizB")
    assert await one(core, other) == refused(
        ErrorCode.FAILED_PRECONDITION, "business case CASE-C belongs to another business system"
    )


async def test_a_create_with_bad_input_is_refused_by_name(harness: Harness) -> None:
    core = await harness.core()
    for create, message in (
        (CreateOrder(new_id(), "", harness.window(1), "张三", LINES), "business_no is required"),
        (CreateOrder(new_id(), "CASE-1", harness.window(1), "张" * 65, LINES),
         "payer_name is longer than 64 characters"),
        (CreateOrder(new_id(), "CASE-1", "ZZ9W1", "张三", LINES),
         "window 'ZZ9W1' is not served here"),
    ):  # fmt: skip
        assert await one(core, create) == refused(ErrorCode.INVALID_ARGUMENT, message)
    at_limit = CreateOrder(new_id(), "CASE-1", harness.window(1), "张" * 64, LINES)
    assert isinstance(await one(core, at_limit), Done)


class ClaimTimes(MemoryStore):
    """Keeps the time to live each claim was asked for (the in-memory store ignores it)."""

    def __init__(self) -> None:
        super().__init__()
        self.ttl_ms: dict[str, int | None] = {}

    def read_batch(self) -> MemoryReadBatch:
        batch = super().read_batch()
        claim = batch.claim

        def timed(key: str, value: str, ttl_ms: int | None) -> Read:
            self.ttl_ms[key] = ttl_ms
            return claim(key, value, ttl_ms)

        batch.claim = timed  # type: ignore[method-assign]
        return batch


async def test_a_request_and_its_auth_code_are_claimed_for_the_idempotency_time() -> None:
    h = Harness(ClaimTimes(), small_config(service_points=1, windows=2))
    try:
        core = await h.core()
        order_id = order_of(await one(core, h.create()))["order_id"]
        pay = h.pay(order_id)
        await one(core, pay)
        await settled(h, order_id)
    finally:
        for started in h.cores:
            await started.stop()
    ttl = h.config.settings.idempotency_ttl_s * 1000
    assert isinstance(h.store, ClaimTimes)
    assert h.store.ttl_ms[keys.request_claim(pay.request_id)] == ttl
    assert h.store.ttl_ms[keys.auth_code(auth_code_digest(pay.auth_code))] == ttl


@pytest.fixture
def machine_on_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own zone set to UTC, apart from the deployment's (UTC+8)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_on_utc")
async def test_an_order_is_priced_by_the_catalog_of_the_deployments_day() -> None:
    data = small_config_data(service_points=1, windows=1)
    later = copy.deepcopy(data["catalogs"][0])
    later.update(version="2027-07", effective_from=date(2027, 7, 1))
    data["catalogs"].append(later)
    h = Harness(MemoryStore(), parse_config(data, "two catalogs"))
    clock = SetClock()
    # 00:30 on 1 July in China, still 30 June in UTC
    clock.at = int(datetime(2027, 6, 30, 16, 30, tzinfo=UTC).timestamp() * 1000)
    try:
        core = await h.core(clock=clock)
        created = order_of(await one(core, h.create()))
    finally:
        for started in h.cores:
            await started.stop()
    assert created["catalog_version"] == "2027-07"
