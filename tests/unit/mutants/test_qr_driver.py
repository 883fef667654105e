"""The QR driver against a scripted provider on a clock that moves only when it sleeps:
every recorded event with its reason and time, and every provider call. Written for the
mutants of providers/qr_driver.py that `make mutate` found alive."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from orchestrator.domain.playbook import NoAnswer, Playbook
from orchestrator.domain.states import AttemptEvent, AttemptState
from orchestrator.providers.engine import Ticket
from orchestrator.providers.port import (
    ProviderRejected,
    ProviderUnavailable,
    QrAnswer,
    QrCall,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.qr_driver import QrDriver
from tests.unit.mutants.test_engine import T0, Events, FakeClock, HangsOnce, Scripted

PLAYBOOK = Playbook(
    pay_timeout_s=10, query_timeout_s=5, query_interval_s=3, confirm_window_s=30,
    reverse_not_before_s=20, reverse_interval_s=4, reverse_give_up_after_s=12, pay_retries=1,
    no_answer=NoAnswer.QUERY, follow_up_interval_s=50, follow_up_window_s=200,
    qr_expiry_s=10, qr_follow_up_s=100,
)  # fmt: skip
CALL = QrCall("A1", 8000, "SP01", "T01", "科目一", T0, T0 + 10_000)
URL = "weixin://wxpay/bizpayurl?pr=abc"
PAID = TradeAnswer(TradeStatus.PAID, "4200001")
WAITING = TradeAnswer(TradeStatus.CONFIRMING)
CLOSED = TradeAnswer(TradeStatus.CLOSED)
DONE = ReverseAnswer(ReverseStatus.DONE)


class QrScripted(Scripted):
    async def create_qr(self, call: QrCall) -> QrAnswer:
        return await self._answer("create_qr")  # type: ignore[no-any-return]

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        return await self._answer("close")  # type: ignore[no-any-return]


class Recorded(Events):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.codes: list[tuple[str, int | None]] = []

    async def __call__(
        self, event: AttemptEvent, *, trade_no: str = "", reason: str = "", **extra: Any
    ) -> None:
        if event is AttemptEvent.QR_CODE_READY:
            self.codes.append((extra["qr_code_url"], extra["qr_expires_at"]))
        await super().__call__(event, trade_no=trade_no, reason=reason)


async def drive(
    state: AttemptState = AttemptState.SUBMITTED,
    *,
    call: QrCall | None = CALL,
    expires_at_ms: int = 0,
    follow_up: bool = False,
    notices: tuple[TradeAnswer, ...] = (),
    **answers: list[Any],
) -> tuple[Recorded, QrScripted]:
    """The attempt driven to its end (`notices` are in its inbox before it starts); what
    became of each notice is kept as the provider's "notices" answer."""
    clock = FakeClock()
    provider = QrScripted(clock, **answers)
    events = Recorded(clock)
    driver = QrDriver(provider, PLAYBOOK, clock, events)  # type: ignore[arg-type]
    told = [driver.inbox.put(notice) for notice in notices]
    ticket = Ticket(
        "A1", state, T0, None, 8000, follow_up=follow_up, qr_call=call,
        qr_expires_at_ms=expires_at_ms,
    )  # fmt: skip
    await driver.run(ticket)
    provider.answers["notices"] = [[future.result() for future in told]]
    return events, provider


async def test_a_code_paid_while_open() -> None:
    events, provider = await drive(create_qr=[QrAnswer(URL)], query=[WAITING, WAITING, PAID])
    assert events.seen == [
        (0, AttemptEvent.QR_CODE_READY, "", ""),
        (6, AttemptEvent.PAID, "4200001", ""),
    ]
    assert events.codes == [(URL, T0 + 10_000)]
    assert provider.calls == [("create_qr", 0), ("query", 0), ("query", 3), ("query", 6)]


async def test_a_declined_try_leaves_the_code_open_until_it_expires_and_is_closed() -> None:
    declined = TradeAnswer(TradeStatus.DECLINED, "", "NOTENOUGH")
    events, provider = await drive(
        create_qr=[QrAnswer(URL)], query=[declined, WAITING], close=[ProviderRejected("x"), DONE]
    )
    assert events.seen == [
        (0, AttemptEvent.QR_CODE_READY, "", ""),
        (10, AttemptEvent.REVERSAL_STARTED, "", "QR code expired"),
        (14, AttemptEvent.REVERSED, "", "QR code expired"),
        (114, AttemptEvent.FOLLOW_UP_CLEARED, "",
            "no payment after the close; reconciliation settles the rest"),
    ]  # fmt: skip
    queries = [at for op, at in provider.calls if op == "query"]
    assert queries == [0, 3, 6, 9, 10, 64, 114]  # the last wait is cut to the code's end
    assert [at for op, at in provider.calls if op == "close"] == [10, 14]


async def test_a_code_the_provider_closed_is_followed_up_and_a_late_payment_found() -> None:
    events, _ = await drive(create_qr=[QrAnswer(URL)], query=[CLOSED, WAITING, PAID])
    assert events.seen == [
        (0, AttemptEvent.QR_CODE_READY, "", ""),
        (0, AttemptEvent.DECLINED, "", "CLOSED"),
        (100, AttemptEvent.LATE_SUCCESS, "4200001", "paid after the attempt ended unpaid"),
    ]


async def test_a_refused_code_is_declined_and_an_unclear_one_closed() -> None:
    events, provider = await drive(create_qr=[ProviderRejected("INVALID_REQUEST")])
    assert events.seen == [(0, AttemptEvent.DECLINED, "", "QR code refused: INVALID_REQUEST")]
    unavailable = ProviderUnavailable("refused")
    events, provider = await drive(create_qr=[unavailable, unavailable], close=[DONE], query=[None])
    assert events.seen[:3] == [
        (3, AttemptEvent.NO_ANSWER, "", "no clear answer to the QR code"),
        (3, AttemptEvent.REVERSAL_STARTED, "", "QR code request unclear"),
        (3, AttemptEvent.REVERSED, "", "QR code request unclear"),
    ]
    assert provider.calls[:3] == [("create_qr", 0), ("create_qr", 3), ("close", 3)]
    events, _ = await drive(create_qr=[unavailable, QrAnswer(URL)], query=[PAID])
    assert events.seen == [
        (3, AttemptEvent.QR_CODE_READY, "", ""),
        (3, AttemptEvent.PAID, "4200001", ""),
    ]
    events, _ = await drive(create_qr=[TimeoutError()], close=[DONE], query=[PAID])
    assert [e[1] for e in events.seen] == [
        AttemptEvent.NO_ANSWER, AttemptEvent.REVERSAL_STARTED, AttemptEvent.REVERSED,
        AttemptEvent.LATE_SUCCESS,
    ]  # fmt: skip


async def test_a_close_refused_because_paid_first_records_the_payment() -> None:
    events, provider = await drive(
        AttemptState.AWAITING_PAYER, call=None, expires_at_ms=T0, query=[WAITING, PAID],
        close=[ReverseAnswer(ReverseStatus.PAID)],
    )  # fmt: skip
    assert events.seen == [
        (0, AttemptEvent.REVERSAL_STARTED, "", "QR code expired"),
        (0, AttemptEvent.PAID, "4200001", ""),
    ]
    assert provider.calls == [("query", 0), ("close", 0), ("query", 0)]


async def test_a_close_never_confirmed_is_given_up_and_watched() -> None:
    events, provider = await drive(
        AttemptState.REVERSING, call=None, close=[ReverseAnswer(ReverseStatus.RETRY)],
        query=[WAITING],
    )  # fmt: skip
    assert events.seen == [
        (12, AttemptEvent.REVERSAL_ABANDONED, "",
            "close not confirmed in time; following the trade up"),
        (112, AttemptEvent.FOLLOW_UP_CLEARED, "",
            "no payment after the close; reconciliation settles the rest"),
    ]  # fmt: skip
    assert [at for op, at in provider.calls if op == "close"] == [0, 4, 8, 12]


async def test_resumed_before_the_code_was_known_it_is_closed() -> None:
    for state, expires in ((AttemptState.SUBMITTED, 0), (AttemptState.AWAITING_PAYER, 0)):
        events, _ = await drive(state, call=None, expires_at_ms=expires, close=[DONE], query=[None])
        assert events.seen[:2] == [
            (0, AttemptEvent.REVERSAL_STARTED, "", "QR code unknown after a restart"),
            (0, AttemptEvent.REVERSED, "", "QR code unknown after a restart"),
        ]
    events, _ = await drive(AttemptState.REVERSED, call=None, follow_up=True, query=[CLOSED, PAID])
    assert events.seen == [
        (100, AttemptEvent.LATE_SUCCESS, "4200001", "paid after the attempt ended unpaid")
    ]


async def test_a_payment_notified_while_the_code_is_open_is_taken_instead_of_a_query() -> None:
    events, provider = await drive(notices=(PAID,), create_qr=[QrAnswer(URL)], query=[WAITING])
    assert events.seen == [
        (0, AttemptEvent.QR_CODE_READY, "", ""),
        (0, AttemptEvent.PAID, "4200001", ""),
    ]
    assert provider.calls == [("create_qr", 0)]
    assert provider.answers["notices"] == [[True]]


async def test_a_code_resumed_while_closing_is_closed_with_its_own_reason() -> None:
    events, provider = await drive(AttemptState.REVERSING, call=None, close=[DONE], query=[None])
    assert events.seen == [
        (0, AttemptEvent.REVERSED, "", "QR code closed"),
        (100, AttemptEvent.FOLLOW_UP_CLEARED, "",
            "no payment after the close; reconciliation settles the rest"),
    ]  # fmt: skip
    assert provider.calls == [("close", 0), ("query", 50), ("query", 100)]


class Hangs(HangsOnce, QrScripted):
    hang = ("create_qr", "close")


async def test_a_code_request_and_a_close_that_hang_are_cut_at_their_timeouts() -> None:
    clock = FakeClock()
    provider = Hangs(clock, create_qr=[QrAnswer(URL)], close=[DONE], query=[None])
    events = Recorded(clock)
    quick = replace(PLAYBOOK, pay_timeout_s=0.01, query_timeout_s=0.01)  # real seconds
    driver = QrDriver(provider, quick, clock, events)  # type: ignore[arg-type]
    ticket = Ticket("A1", AttemptState.SUBMITTED, T0, None, 8000, qr_call=CALL)
    await asyncio.wait_for(driver.run(ticket), 5)
    assert events.seen == [
        (0, AttemptEvent.NO_ANSWER, "", "no clear answer to the QR code"),
        (0, AttemptEvent.REVERSAL_STARTED, "", "QR code request unclear"),
        (4, AttemptEvent.REVERSED, "", "QR code request unclear"),
        (104, AttemptEvent.FOLLOW_UP_CLEARED, "",
            "no payment after the close; reconciliation settles the rest"),
    ]  # fmt: skip
    # the first create_qr and the first close hung
    assert [call for call in provider.calls if call[0] != "query"] == [
        ("create_qr", 0), ("close", 0), ("close", 4),
    ]  # fmt: skip


async def test_a_close_given_up_then_a_payment_found_is_a_late_success() -> None:
    events, provider = await drive(
        AttemptState.REVERSING, call=None, close=[ReverseAnswer(ReverseStatus.RETRY)],
        query=[WAITING, PAID],
    )  # fmt: skip
    assert events.seen == [
        (12, AttemptEvent.REVERSAL_ABANDONED, "",
            "close not confirmed in time; following the trade up"),
        (112, AttemptEvent.LATE_SUCCESS, "4200001", "paid after the attempt ended unpaid"),
    ]  # fmt: skip
    assert [at for op, at in provider.calls if op == "query"] == [62, 112]


async def test_notices_after_the_close_are_taken_instead_of_queries() -> None:
    events, provider = await drive(
        AttemptState.REVERSED, call=None, follow_up=True, notices=(CLOSED, PAID), query=[None]
    )
    assert events.seen == [
        (100, AttemptEvent.LATE_SUCCESS, "4200001", "paid after the attempt ended unpaid")
    ]
    assert provider.calls == []
    assert provider.answers["notices"] == [[False, True]]  # the closed trade changed nothing


async def test_a_close_that_says_paid_is_not_a_payment_until_the_trade_reads_paid() -> None:
    """The close answers "paid" but the trade, queried, still waits: nothing is recorded
    paid (no money is known); the close is tried again until it is given up and the trade
    followed. Fails with the check of the query's answer planted as `paid is not None`."""
    events, provider = await drive(
        AttemptState.AWAITING_PAYER, call=None, expires_at_ms=T0, query=[WAITING],
        close=[ReverseAnswer(ReverseStatus.PAID)],
    )  # fmt: skip
    given_up = "close not confirmed in time; following the trade up"
    cleared = "no payment after the close; reconciliation settles the rest"
    assert events.seen == [
        (0, AttemptEvent.REVERSAL_STARTED, "", "QR code expired"),
        (12, AttemptEvent.REVERSAL_ABANDONED, "", given_up),
        (112, AttemptEvent.FOLLOW_UP_CLEARED, "", cleared),
    ]
    assert provider.calls[:6] == [
        ("query", 0), ("close", 0), ("query", 0), ("close", 4), ("query", 4), ("close", 8),
    ]  # fmt: skip
