"""The attempt and refund drivers against a scripted provider on a clock that only moves
when a driver sleeps: every recorded event with its reason, every provider call, and
when. Written for the mutants of providers/engine.py that `make mutate` found alive."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from orchestrator.domain.playbook import NoAnswer, Playbook
from orchestrator.domain.states import AttemptEvent, AttemptState
from orchestrator.providers.engine import (
    AttemptDriver,
    Observation,
    RefundDriver,
    RefundTicket,
    Ticket,
    trade_observation,
)
from orchestrator.providers.port import (
    PayCall,
    ProviderRejected,
    ProviderUnavailable,
    RefundAnswer,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)

T0 = 1_800_000_000_000
PLAYBOOK = Playbook(
    pay_timeout_s=10, query_timeout_s=5, query_interval_s=3, confirm_window_s=30,
    reverse_not_before_s=20, reverse_interval_s=4, reverse_give_up_after_s=60, pay_retries=1,
    no_answer=NoAnswer.QUERY, follow_up_interval_s=50, follow_up_window_s=200,
)  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def now_ms(self) -> int:
        return self.now

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round(seconds * 1000)

    def sleep(self, seconds: float) -> Awaitable[None]:
        return self._sleep(seconds)


class Scripted:
    """Answers each operation from its own list, in turn (an exception is raised); the
    last answer repeats. Notes every call with the clock's time."""

    def __init__(self, clock: FakeClock, **answers: list[Any]) -> None:
        self.clock = clock
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def _answer(self, operation: str) -> Any:
        self.calls.append((operation, (self.clock.now - T0) // 1000))
        queue = self.answers[operation]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def pay(self, call: PayCall) -> TradeAnswer:
        return await self._answer("pay")  # type: ignore[no-any-return]

    async def query(self, trade: TradeRef) -> TradeAnswer:
        return await self._answer("query")  # type: ignore[no-any-return]

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        return await self._answer("reverse")  # type: ignore[no-any-return]

    async def refund(self, call: Any) -> RefundAnswer:
        return await self._answer("refund")  # type: ignore[no-any-return]

    async def refund_query(self, call: Any) -> RefundAnswer:
        return await self._answer("refund_query")  # type: ignore[no-any-return]


class Events:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.seen: list[tuple[int, AttemptEvent, str, str]] = []

    async def __call__(
        self, event: AttemptEvent, *, trade_no: str = "", reason: str = "", **_: Any
    ) -> None:
        self.seen.append(((self.clock.now - T0) // 1000, event, trade_no, reason))


CALL = PayCall("A1", "134567890123456789", 8000, "SP01", "T01", "科目一", T0)


async def drive(
    state: AttemptState = AttemptState.SUBMITTED,
    *,
    call: PayCall | None = CALL,
    follow_up: bool = False,
    playbook: Playbook = PLAYBOOK,
    **answers: list[Any],
) -> tuple[Events, Scripted, FakeClock]:
    clock = FakeClock()
    provider = Scripted(clock, **answers)
    events = Events(clock)
    driver = AttemptDriver(provider, playbook, clock, events)  # type: ignore[arg-type]
    await driver.run(Ticket("A1", state, T0, call, 8000, follow_up=follow_up))
    return events, provider, clock


PAID = TradeAnswer(TradeStatus.PAID, "4200001")
CONFIRMING = TradeAnswer(TradeStatus.CONFIRMING)
NOT_FOUND = TradeAnswer(TradeStatus.NOT_FOUND)
DONE = ReverseAnswer(ReverseStatus.DONE, "closed")


def test_what_each_answer_means_for_each_state() -> None:
    S, E = AttemptState, AttemptEvent
    late = Observation(E.LATE_SUCCESS, "4200001", "paid after the attempt ended unpaid")
    assert trade_observation(S.FAILED, PAID) == late
    assert trade_observation(S.REVERSED, PAID) == late
    assert trade_observation(S.SUCCEEDED, PAID) is None
    assert trade_observation(S.LATE_SUCCESS_REFUNDED, PAID) is None
    assert trade_observation(S.FAILED, CONFIRMING) is None
    assert trade_observation(S.REVERSING, PAID) == Observation(E.PAID, "4200001")
    assert trade_observation(S.REVERSING, TradeAnswer(TradeStatus.CLOSED)) is None
    assert trade_observation(S.UNKNOWN, TradeAnswer(TradeStatus.DECLINED, "T9", "NOTENOUGH")) == (
        Observation(E.DECLINED, "T9", "NOTENOUGH")
    )
    assert trade_observation(S.AWAITING_PAYER, TradeAnswer(TradeStatus.CLOSED)) == Observation(
        E.DECLINED, "", "CLOSED"
    )
    assert trade_observation(S.SUBMITTED, CONFIRMING) == Observation(E.PAYER_CONFIRMING)
    assert trade_observation(S.UNKNOWN, CONFIRMING) == Observation(E.PAYER_CONFIRMING)
    assert trade_observation(S.AWAITING_PAYER, CONFIRMING) is None
    assert trade_observation(S.UNKNOWN, NOT_FOUND) is None


async def test_a_clear_payment_is_recorded_at_once() -> None:
    events, provider, _ = await drive(pay=[PAID])
    assert events.seen == [(0, AttemptEvent.PAID, "4200001", "")]
    assert provider.calls == [("pay", 0)]


async def test_a_payer_confirming_is_queried_until_paid() -> None:
    events, provider, clock = await drive(pay=[CONFIRMING], query=[CONFIRMING, CONFIRMING, PAID])
    assert events.seen == [
        (0, AttemptEvent.PAYER_CONFIRMING, "", ""),
        (9, AttemptEvent.PAID, "4200001", ""),
    ]
    assert provider.calls == [("pay", 0), ("query", 3), ("query", 6), ("query", 9)]
    assert clock.sleeps == [3, 3, 3]


async def test_a_payer_who_never_confirms_is_reversed_after_the_window() -> None:
    events, provider, _ = await drive(pay=[CONFIRMING], query=[CONFIRMING], reverse=[DONE])
    assert events.seen == [
        (0, AttemptEvent.PAYER_CONFIRMING, "", ""),
        (30, AttemptEvent.REVERSAL_STARTED, "", "payer did not confirm in time"),
        (30, AttemptEvent.REVERSED, "", "payer did not confirm in time"),
    ]
    assert provider.calls[-1] == ("reverse", 30)


async def test_no_answer_is_queried_then_reversed_no_earlier_than_allowed() -> None:
    fast = Playbook(10, 5, 3, 6, 20, 4, 60, 0, NoAnswer.QUERY)
    events, provider, clock = await drive(
        playbook=fast, pay=[TimeoutError()], query=[ProviderRejected("x")],
        reverse=[ReverseAnswer(ReverseStatus.RETRY), DONE],
    )  # fmt: skip
    assert events.seen == [
        (0, AttemptEvent.NO_ANSWER, "", "no clear answer to the pay call"),
        (6, AttemptEvent.REVERSAL_STARTED, "", "outcome still unknown"),
        (24, AttemptEvent.REVERSED, "", "outcome still unknown"),
    ]
    assert provider.calls == [
        ("pay", 0), ("query", 3), ("query", 6), ("reverse", 20), ("reverse", 24),
    ]  # fmt: skip
    assert clock.sleeps == [3, 3, 14, 4]


async def test_a_pay_refused_at_the_door_is_sent_again_then_declined_when_never_made() -> None:
    refused = ProviderUnavailable("connection refused")
    events, provider, _clock = await drive(pay=[refused, refused], query=[NOT_FOUND])
    assert events.seen == [
        (3, AttemptEvent.NO_ANSWER, "", "the pay call never got through"),
        (6, AttemptEvent.DECLINED, "",
            "the pay call never reached the provider, which has no trade"),
    ]  # fmt: skip
    assert provider.calls == [("pay", 0), ("pay", 3), ("query", 6)]
    events, provider, _ = await drive(pay=[refused, PAID])
    assert events.seen == [(3, AttemptEvent.PAID, "4200001", "")]
    events, provider, _ = await drive(pay=[ProviderRejected("500")], query=[NOT_FOUND, PAID])
    assert [e[1] for e in events.seen] == [AttemptEvent.NO_ANSWER, AttemptEvent.PAID]


async def test_unionpay_reverses_any_sale_without_a_clear_answer_at_once() -> None:
    reverse_first = Playbook(10, 5, 3, 30, 0, 4, 60, 0, NoAnswer.REVERSE)
    events, provider, _ = await drive(playbook=reverse_first, pay=[TimeoutError()], reverse=[DONE])
    assert events.seen == [
        (0, AttemptEvent.NO_ANSWER, "", "no clear answer to the pay call"),
        (0, AttemptEvent.REVERSAL_STARTED, "", "no clear answer to the pay call"),
        (0, AttemptEvent.REVERSED, "", "no clear answer to the pay call"),
    ]
    assert provider.calls == [("pay", 0), ("reverse", 0)]


async def test_a_resumed_attempt_is_queried_at_once_and_closed_when_unknown() -> None:
    events, provider, _clock = await drive(call=None, query=[NOT_FOUND], reverse=[DONE])
    assert events.seen == [
        (0, AttemptEvent.REVERSAL_STARTED, "", "unknown after a restart"),
        (20, AttemptEvent.REVERSED, "", "unknown after a restart"),
    ]
    assert provider.calls == [("query", 0), ("reverse", 20)]
    events, _, _ = await drive(AttemptState.UNKNOWN, call=None, query=[PAID])
    assert events.seen == [(0, AttemptEvent.PAID, "4200001", "")]


async def test_a_reversal_under_way_is_resumed_without_recording_it_again() -> None:
    events, _provider, _ = await drive(AttemptState.REVERSING, call=None, reverse=[DONE])
    assert events.seen == [(20, AttemptEvent.REVERSED, "", "closed")]


async def test_an_unconfirmed_reversal_is_given_up_and_followed_up_until_paid() -> None:
    events, provider, _clock = await drive(
        AttemptState.REVERSING, call=None, reverse=[ProviderRejected("x")],
        query=[CONFIRMING, None, PAID],
    )  # fmt: skip
    assert events.seen == [
        (60, AttemptEvent.REVERSAL_ABANDONED, "",
            "reversal not confirmed in time; following the trade up"),
        (210, AttemptEvent.LATE_SUCCESS, "4200001", "paid after the reversal was given up"),
    ]  # fmt: skip
    reverses = [at for op, at in provider.calls if op == "reverse"]
    assert reverses == [20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 110]  # 110: still paying
    assert [at for op, at in provider.calls if op == "query"] == [110, 160, 210]


async def test_follow_up_clears_when_the_provider_kept_nothing_or_the_window_ends() -> None:
    events, _, _ = await drive(AttemptState.FAILED, call=None, follow_up=True, query=[NOT_FOUND])
    assert events.seen == [
        (50, AttemptEvent.FOLLOW_UP_CLEARED, "", "provider kept nothing (NOT_FOUND)")
    ]
    events, provider, _ = await drive(
        AttemptState.FAILED, call=None, follow_up=True, query=[ProviderRejected("x")]
    )
    assert events.seen == [
        (200, AttemptEvent.FOLLOW_UP_CLEARED, "",
            "follow-up window over; reconciliation settles the rest"),
    ]  # fmt: skip
    assert [at for _, at in provider.calls] == [50, 100, 150, 200]


async def refund(
    *notices: RefundAnswer, **answers: list[Any]
) -> tuple[list[tuple[int, bool, str, str]], Scripted]:
    """The refund driven to its end (`notices` are in its inbox before it starts); what
    it recorded, and the provider with every call. The overdue flag's changes, each with
    its time, are kept as the provider's "overdue" answers; what became of each notice
    as its "notices" answers, and the driver's last reason as its "last_reason"."""
    clock = FakeClock()
    provider = Scripted(clock, **answers)
    ended: list[tuple[int, bool, str, str]] = []
    overdue: list[tuple[int, bool]] = []

    async def record(*, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
        ended.append(((clock.now - T0) // 1000, succeeded, refund_no, reason))

    def flag(on: bool) -> None:
        overdue.append(((clock.now - T0) // 1000, on))

    driver = RefundDriver(
        provider, PLAYBOOK, clock, record, alert_after_s=8, overdue=flag,  # type: ignore[arg-type]
    )  # fmt: skip
    told = [driver.inbox.put(notice) for notice in notices]
    ticket = RefundTicket("A1R1ABCDEF", TradeRef("A1", 8000, T0), 3000, T0)
    await driver.run(ticket)
    provider.answers["overdue"] = [overdue]
    provider.answers["notices"] = [[future.result() for future in told]]
    provider.answers["last_reason"] = [driver.last_reason]
    return ended, provider


async def test_a_refund_is_sent_then_queried_until_final() -> None:
    pending = RefundAnswer(RefundStatus.PENDING)
    ended, provider = await refund(
        refund=[TimeoutError(), pending], refund_query=[pending, NOT_FOUND_REFUND, pending, OK]
    )
    assert ended == [(24, True, "RF1", "SUCCEEDED")]
    assert provider.calls == [
        ("refund", 0), ("refund", 4), ("refund_query", 8), ("refund_query", 12),
        ("refund", 16), ("refund_query", 20), ("refund_query", 24),
    ]  # fmt: skip
    # overdue from the first look at 8 s (alert_after_s), and no longer once it ended
    assert provider.answers["overdue"] == [[(8, True), (24, False)]]


NOT_FOUND_REFUND = RefundAnswer(RefundStatus.NOT_FOUND)
OK = RefundAnswer(RefundStatus.SUCCEEDED, "RF1")


async def test_a_refused_refund_is_recorded_with_its_reason() -> None:
    ended, provider = await refund(refund=[RefundAnswer(RefundStatus.FAILED, "", "NOT_ENOUGH")])
    assert ended == [(0, False, "", "NOT_ENOUGH")]
    assert provider.answers["overdue"] == [[]]
    ended, _ = await refund(refund=[RefundAnswer(RefundStatus.FAILED)])
    assert ended == [(0, False, "", "FAILED")]


class Hanging(Scripted):
    """A reverse that never answers, and the trades reversals name."""

    def __init__(self, clock: FakeClock, **answers: list[Any]) -> None:
        super().__init__(clock, **answers)
        self.reversed: list[TradeRef] = []

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        self.reversed.append(trade)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_follow_up_takes_a_notified_payment_instead_of_asking() -> None:
    clock = FakeClock()
    provider = Scripted(clock, query=[CONFIRMING])
    events = Events(clock)
    driver = AttemptDriver(provider, PLAYBOOK, clock, events)  # type: ignore[arg-type]
    told = driver.inbox.put(PAID)
    await driver.run(Ticket("A1", AttemptState.FAILED, T0, None, 8000, follow_up=True))
    assert events.seen == [
        (50, AttemptEvent.LATE_SUCCESS, "4200001", "paid after the reversal was given up")
    ]  # the fake clock's nap runs its whole length
    assert provider.calls == [] and told.result() is True


async def test_follow_up_goes_on_after_a_notice_that_is_no_payment() -> None:
    clock = FakeClock()
    provider = Scripted(clock, query=[NOT_FOUND])
    events = Events(clock)
    driver = AttemptDriver(provider, PLAYBOOK, clock, events)  # type: ignore[arg-type]
    told = driver.inbox.put(CONFIRMING)
    await driver.run(Ticket("A1", AttemptState.FAILED, T0, None, 8000, follow_up=True))
    assert told.result() is False
    assert events.seen == [
        (100, AttemptEvent.FOLLOW_UP_CLEARED, "", "provider kept nothing (NOT_FOUND)")
    ]
    assert provider.calls == [("query", 100)]


async def test_a_payer_still_paying_in_follow_up_gets_one_more_reverse_within_its_time() -> None:
    clock = FakeClock()
    provider = Hanging(clock, query=[CONFIRMING, NOT_FOUND])
    events = Events(clock)
    quick = Playbook(10, 0.01, 3, 30, 20, 4, 60, 0, NoAnswer.QUERY, 50, 200)
    driver = AttemptDriver(provider, quick, clock, events)  # type: ignore[arg-type]
    await asyncio.wait_for(
        driver.run(Ticket("A1", AttemptState.FAILED, T0, None, 8000, follow_up=True)), 5
    )
    assert provider.reversed == [TradeRef("A1", 8000, T0)]
    assert events.seen == [
        (100, AttemptEvent.FOLLOW_UP_CLEARED, "", "provider kept nothing (NOT_FOUND)")
    ]


class RefundCalls(Scripted):
    """Keeps each refund call it is handed; its first refund never answers."""

    def __init__(self, clock: FakeClock, **answers: list[Any]) -> None:
        super().__init__(clock, **answers)
        self.handed: list[Any] = []

    async def refund(self, call: Any) -> RefundAnswer:
        self.handed.append(call)
        if len(self.handed) == 1:
            await asyncio.Event().wait()
        return await super().refund(call)


async def test_a_refund_that_hangs_is_sent_again_naming_its_first_time() -> None:
    clock = FakeClock()
    # the second send is not found (not pending): its status is the last word kept
    provider = RefundCalls(clock, refund=[NOT_FOUND_REFUND, OK])
    ended: list[bool] = []

    async def record(*, succeeded: bool, refund_no: str = "", reason: str = "") -> None:
        ended.append(succeeded)

    quick = replace(PLAYBOOK, query_timeout_s=0.01)  # real seconds: the call is awaited
    driver = RefundDriver(provider, quick, clock, record)  # type: ignore[arg-type]
    assert driver.last_reason == ""
    ticket = RefundTicket("A1R1ABCDEF", TradeRef("A1", 8000, T0), 3000, T0 - 5000)
    await asyncio.wait_for(driver.run(ticket), 10)
    assert ended == [True]
    assert driver.last_reason == "NOT_FOUND"
    assert [(c.out_refund_no, c.refund_fen, c.at_ms) for c in provider.handed] == [
        ("A1R1ABCDEF", 3000, T0 - 5000)
    ] * 3


async def test_a_refund_notice_that_tells_no_outcome_is_not_applied_and_the_refund_goes() -> None:
    notified = RefundAnswer(RefundStatus.PENDING, "", "notified")
    ended, provider = await refund(notified, refund=[OK])
    assert provider.answers["notices"] == [[False]]
    assert ended == [(0, True, "RF1", "SUCCEEDED")]  # asked at once, without a nap
    assert provider.calls == [("refund", 0)]
    assert provider.answers["last_reason"] == [""]  # the notice's word is not kept


async def test_the_last_reason_kept_is_the_latest_pending_one_else_the_first_word() -> None:
    processing = RefundAnswer(RefundStatus.PENDING, "", "PROCESSING")
    _, provider = await refund(
        refund=[NOT_FOUND_REFUND, processing], refund_query=[RefundAnswer(RefundStatus.PENDING), OK]
    )
    assert provider.calls == [
        ("refund", 0), ("refund", 4), ("refund_query", 8), ("refund_query", 12),
    ]  # fmt: skip
    # NOT_FOUND first (nothing kept yet), then each pending answer replaces it
    assert provider.answers["last_reason"] == ["PENDING"]
    _, provider = await refund(refund=[processing, OK], refund_query=[NOT_FOUND_REFUND])
    assert provider.calls == [("refund", 0), ("refund_query", 4), ("refund", 8)]
    assert provider.answers["last_reason"] == ["PROCESSING"]  # not found does not replace it


async def resume_reversal(
    elapsed_ms: int, provider_of: type[Scripted] = Scripted, query_timeout_s: float = 5
) -> tuple[Events, Scripted, FakeClock]:
    """A reversal under way resumed `elapsed_ms` after its pay call (reverse_not_before_s
    is 20): when it is sent, and every sleep before it."""
    clock = FakeClock()
    clock.now = T0 + elapsed_ms
    provider = provider_of(clock, reverse=[DONE])
    events = Events(clock)
    playbook = replace(PLAYBOOK, query_timeout_s=query_timeout_s)
    driver = AttemptDriver(provider, playbook, clock, events)  # type: ignore[arg-type]
    ticket = Ticket("A1", AttemptState.REVERSING, T0, None, 8000)
    await asyncio.wait_for(driver.run(ticket), 5)
    return events, provider, clock


async def test_a_reversal_waits_out_the_last_second_before_it_is_allowed() -> None:
    events, provider, clock = await resume_reversal(19_000)
    assert clock.sleeps == [1]
    assert provider.calls == [("reverse", 20)]
    assert events.seen == [(20, AttemptEvent.REVERSED, "", "closed")]
    _, provider, clock = await resume_reversal(19_500)
    assert clock.sleeps == [0.5]
    assert provider.calls == [("reverse", 20)]


async def test_a_reversal_already_allowed_is_sent_without_a_sleep() -> None:
    for elapsed_ms in (20_000, 25_000):
        _, provider, clock = await resume_reversal(elapsed_ms)
        assert clock.sleeps == []
        assert provider.calls == [("reverse", elapsed_ms // 1000)]


class HangsOnce(Scripted):
    """The first call of each operation in `hang` never answers; later ones are scripted."""

    hang: tuple[str, ...] = ("reverse",)

    async def _answer(self, operation: str) -> Any:
        if operation in self.hang and not any(op == operation for op, _ in self.calls):
            self.calls.append((operation, (self.clock.now - T0) // 1000))
            await asyncio.Event().wait()
        return await super()._answer(operation)


async def test_a_reverse_that_hangs_is_cut_at_its_timeout_and_sent_again() -> None:
    # query_timeout_s is real seconds here: the hung call is awaited
    events, provider, clock = await resume_reversal(20_000, HangsOnce, query_timeout_s=0.01)
    assert provider.calls == [("reverse", 20), ("reverse", 24)]
    assert clock.sleeps == [4]
    assert events.seen == [(24, AttemptEvent.REVERSED, "", "closed")]


async def test_a_resumed_attempt_asks_at_once_then_at_each_interval() -> None:
    events, provider, clock = await drive(
        AttemptState.UNKNOWN, call=None, query=[CONFIRMING, None, PAID]
    )
    assert events.seen == [
        (0, AttemptEvent.PAYER_CONFIRMING, "", ""),
        (6, AttemptEvent.PAID, "4200001", ""),
    ]
    assert provider.calls == [("query", 0), ("query", 3), ("query", 6)]
    assert clock.sleeps == [3, 3]


async def test_a_trade_not_found_after_the_pay_call_answered_declines_nothing() -> None:
    # the pay call got through (the payer is confirming): a query that finds no trade yet
    # is no proof it never arrived, so the attempt waits on
    events, provider, _ = await drive(pay=[CONFIRMING], query=[NOT_FOUND, PAID])
    assert events.seen == [
        (0, AttemptEvent.PAYER_CONFIRMING, "", ""),
        (6, AttemptEvent.PAID, "4200001", ""),
    ]
    assert provider.calls == [("pay", 0), ("query", 3), ("query", 6)]


class QueryHangsOnce(HangsOnce):
    hang = ("query",)


async def test_a_query_that_hangs_is_cut_at_its_timeout_and_asked_again() -> None:
    clock = FakeClock()
    provider = QueryHangsOnce(clock, query=[PAID])
    events = Events(clock)
    quick = replace(PLAYBOOK, query_timeout_s=0.01)  # real seconds: the hung call is awaited
    driver = AttemptDriver(provider, quick, clock, events)  # type: ignore[arg-type]
    ticket = Ticket("A1", AttemptState.UNKNOWN, T0, None, 8000)
    await asyncio.wait_for(driver.run(ticket), 5)
    assert provider.calls == [("query", 0), ("query", 3)]
    assert events.seen == [(3, AttemptEvent.PAID, "4200001", "")]


async def test_a_unionpay_reversal_that_meets_a_paid_sale_is_never_taken_as_done() -> None:
    """A sale without a clear answer is reversed at once (冲正). If the sale was paid and
    the reversal is refused (after the settlement day's 23:00 ACP answers 35 or 12; an
    answer of "paid"), the attempt is not REVERSED: the reversal is asked again until it
    is given up, and only the follow-up's query, a verified answer about the trade, makes
    it a late success (refunded by the core). Fails with the engine's reversal planted to
    end on any answer but RETRY (`answer.status is not ReverseStatus.RETRY`)."""
    reverse_first = Playbook(10, 5, 3, 30, 0, 4, 12, 0, NoAnswer.REVERSE, 50, 200)
    refused_paid = ReverseAnswer(ReverseStatus.PAID, "paid")
    for reverse in ([ProviderRejected("35 原交易不存在或状态不正确")], [refused_paid]):
        events, provider, _ = await drive(
            playbook=reverse_first, pay=[TimeoutError()], reverse=reverse, query=[PAID]
        )
        assert [(at, event) for at, event, _, _ in events.seen] == [
            (0, AttemptEvent.NO_ANSWER),
            (0, AttemptEvent.REVERSAL_STARTED),
            (12, AttemptEvent.REVERSAL_ABANDONED),
            (62, AttemptEvent.LATE_SUCCESS),
        ]
        assert events.seen[-1][2] == "4200001"
        assert [at for op, at in provider.calls if op == "reverse"] == [0, 4, 8, 12]
        assert [at for op, at in provider.calls if op == "query"] == [62]
