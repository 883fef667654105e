"""Random event sequences against one order: the invariants of docs/DOMAIN.md §4 hold after
every step, refused steps change nothing, and the journal's versions stay gap-free.

The money is checked twice: by invariant_violations, and by the machine's own account of
what the steps it sent did (what was paid, by which attempt; which refunds went through),
so that a blind invariant_violations cannot hide a wrong sum."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.errors import DomainError
from orchestrator.domain.order import Change, Order, invariant_violations
from orchestrator.domain.records import decode_order, encode_order, is_open
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    PayMode,
    RefundState,
)
from tests.support import nonce

LINES = (PricedLine("EXM-K1", "科目一", "次", FeeCategory.EXAM, 1, 8000, 8000),)
PRICE = 8000
PAID_STATES = {OrderState.PAID, OrderState.PARTIALLY_REFUNDED, OrderState.REFUNDED}


class OrderMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_800_000_000_000
        self.order, change = Order.create(
            order_id="SP01-H", business_no="B", service_point_id="SP01", window_id="W01",
            payer_name="p", lines=LINES, catalog_version="v", now=self.now,
            expires_at=self.now + 10_000_000,
        )  # fmt: skip
        self.journal: list[Change] = [change]
        self.final_seen: dict[str, AttemptState] = {}
        # The machine's own account: attempts the order took money by, refunds given back.
        self.paid_by: set[str] = set()
        self.refunded = 0

    def _apply(self, step: object) -> bool:
        before = self.order.to_record()
        self.now += 1
        try:
            changes = step()  # type: ignore[operator]
        except DomainError:
            assert self.order.to_record() == before, "a refused step changed the order"
            return False
        self.journal.extend(changes if isinstance(changes, list) else [changes])
        return True

    @rule(
        channel=st.sampled_from(list(Channel)),
        cash=st.integers(0, 20000),
        mode=st.sampled_from(list(PayMode)),
    )
    def start_attempt(self, channel: Channel, cash: int, mode: PayMode) -> None:
        self._apply(
            lambda: self.order.start_attempt(
                attempt_id=self.order.next_attempt_id(nonce()),
                channel=channel,
                terminal_id="T",
                request_id="r",
                now=self.now,
                cash_received_fen=cash,
                mode=mode,
            )
        )

    @precondition(lambda self: bool(self.order.attempts))
    @rule(event=st.sampled_from(list(AttemptEvent)), data=st.data())
    def provider_event(self, event: AttemptEvent, data: st.DataObject) -> None:
        attempt = data.draw(st.sampled_from(self.order.attempts))
        code = data.draw(st.sampled_from(["", "http://127.0.0.1:1/_sandbox/qr/t"]))
        was_final = attempt.final
        taken = self._apply(
            lambda: self.order.record_attempt(
                attempt.attempt_id,
                event,
                self.now,
                qr_code_url=code,
                qr_expires_at=self.now + 120_000 if code else None,
            )
        )
        if taken and event is AttemptEvent.PAID and not was_final:
            self.paid_by.add(attempt.attempt_id)

    @rule(amount=st.integers(-100, 9000))
    def refund(self, amount: int) -> None:
        self._apply(
            lambda: self.order.request_refund(
                amount_fen=amount,
                reason="r",
                supervisor_id="S",
                terminal_id="T",
                request_id="q",
                now=self.now,
                nonce=nonce(),
            )
        )

    @precondition(lambda self: bool(self.order.refunds))
    @rule(succeeded=st.booleans(), data=st.data())
    def refund_outcome(self, succeeded: bool, data: st.DataObject) -> None:
        refund = data.draw(st.sampled_from(self.order.refunds))
        taken = self._apply(
            lambda: self.order.record_refund(refund.refund_id, succeeded=succeeded, now=self.now)
        )
        if taken and succeeded and not refund.automatic:
            self.refunded += refund.amount_fen

    @rule()
    def cancel(self) -> None:
        self._apply(lambda: self.order.cancel("withdrawn", self.now))

    @rule()
    def expire(self) -> None:
        self._apply(lambda: self.order.expire(self.now))

    @invariant()
    def domain_invariants_hold(self) -> None:
        assert invariant_violations(self.order) == []

    @invariant()
    def the_money_is_what_the_steps_made_it(self) -> None:
        order = self.order
        assert len(self.paid_by) <= 1, f"paid by {self.paid_by}"
        assert (order.state in PAID_STATES) == bool(self.paid_by)
        if self.paid_by:
            [paid_by] = self.paid_by
            assert order.paid_by == paid_by
            assert order.attempt(paid_by).amount_fen == order.amount_fen == PRICE
        assert order.refunded_fen == self.refunded <= PRICE
        expected = {0: OrderState.PAID, PRICE: OrderState.REFUNDED}.get(
            self.refunded, OrderState.PARTIALLY_REFUNDED
        )
        assert not self.paid_by or order.state is expected
        reserved = sum(
            r.amount_fen
            for r in order.refunds
            if not r.automatic and r.state is not RefundState.FAILED
        )
        assert reserved <= PRICE, f"{reserved} fen refunded or being refunded of {PRICE}"
        assert order.refundable_fen == (PRICE - reserved if self.paid_by else 0)

    @invariant()
    def the_snapshot_round_trips_and_says_open_when_the_order_is(self) -> None:
        """Written, decoded and rebuilt, the order is the same bytes; asked of the record
        (as the drainer does), open is what this hand-written rule says, as for the order."""
        stored = encode_order(self.order.to_record())
        record = decode_order(stored)
        assert encode_order(Order.from_record(record).to_record()) == stored
        open_by_hand = (
            self.order.state in (OrderState.AWAITING_PAYMENT, OrderState.PAYING)
            or any(
                a.follow_up
                or a.state.value not in ("SUCCEEDED", "FAILED", "REVERSED", "LATE_SUCCESS_REFUNDED")
                for a in self.order.attempts
            )
            or any(r.state.value == "PENDING" for r in self.order.refunds)
        )
        assert is_open(record) == self.order.is_open == open_by_hand

    @invariant()
    def journal_is_gap_free(self) -> None:
        assert [c.version for c in self.journal] == list(range(1, self.order.version + 1))

    @invariant()
    def final_attempts_stay_final(self) -> None:
        for attempt in self.order.attempts:
            previous = self.final_seen.get(attempt.attempt_id)
            if previous is not None and previous is not attempt.state:
                assert previous in (AttemptState.FAILED, AttemptState.REVERSED)
                assert attempt.state is AttemptState.LATE_SUCCESS_REFUNDED
            if attempt.final:
                self.final_seen[attempt.attempt_id] = attempt.state


OrderMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestOrderMachine = OrderMachine.TestCase
