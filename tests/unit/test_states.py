"""Every (state, event) pair: allowed pairs go where the table says, the rest refuse."""

import itertools

import pytest

from orchestrator.domain.errors import IllegalTransition
from orchestrator.domain.states import (
    ATTEMPT_TRANSITIONS,
    FINAL_ATTEMPT_STATES,
    ORDER_TRANSITIONS,
    AttemptEvent,
    AttemptState,
    OrderEvent,
    OrderState,
    next_attempt_state,
    next_order_state,
)

ORDER_PAIRS = list(itertools.product(OrderState, OrderEvent))
ATTEMPT_PAIRS = list(itertools.product(AttemptState, AttemptEvent))


@pytest.mark.parametrize(("state", "event"), ORDER_PAIRS)
def test_every_order_pair(state: OrderState, event: OrderEvent) -> None:
    expected = ORDER_TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition, match=f"{state}.*{event}"):
            next_order_state(state, event)
    else:
        assert next_order_state(state, event) is expected


@pytest.mark.parametrize(("state", "event"), ATTEMPT_PAIRS)
def test_every_attempt_pair(state: AttemptState, event: AttemptEvent) -> None:
    expected = ATTEMPT_TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition, match=f"{state}.*{event}"):
            next_attempt_state(state, event)
    else:
        assert next_attempt_state(state, event) is expected


def test_final_attempt_states_change_only_after_a_late_success() -> None:
    for (state, event), target in ATTEMPT_TRANSITIONS.items():
        if state in FINAL_ATTEMPT_STATES and target is not state:
            assert state in (AttemptState.FAILED, AttemptState.REVERSED)
            assert (event, target) == (
                AttemptEvent.LATE_SUCCESS_REFUNDED,
                AttemptState.LATE_SUCCESS_REFUNDED,
            )


def test_closed_orders_take_no_payment() -> None:
    for state in (OrderState.PAID, OrderState.CANCELLED, OrderState.EXPIRED, OrderState.REFUNDED):
        assert (state, OrderEvent.ATTEMPT_STARTED) not in ORDER_TRANSITIONS


def test_every_non_final_attempt_state_can_reach_a_final_one() -> None:
    for start in set(AttemptState) - FINAL_ATTEMPT_STATES:
        seen, frontier = {start}, [start]
        while frontier:
            state = frontier.pop()
            for (origin, _), target in ATTEMPT_TRANSITIONS.items():
                if origin is state and target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert seen & FINAL_ATTEMPT_STATES, start
