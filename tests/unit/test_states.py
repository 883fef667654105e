"""Every (state, event) pair of orders and attempts against a table written here by hand
from docs/DOMAIN.md §4, not read from orchestrator/domain/states.py: a change to the
state machine must be made in both places, on purpose.

Each table has one row per event and one column per state; a cell is where the event
takes an entity in that state, "-" where it is refused."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import IllegalTransition
from orchestrator.domain.states import (
    CLOSED_ORDER_STATES,
    FINAL_ATTEMPT_STATES,
    AttemptEvent,
    AttemptState,
    OrderEvent,
    OrderState,
    next_attempt_state,
    next_order_state,
)

ORDER_STATES = {
    "AWAIT": "AWAITING_PAYMENT",
    "PAYING": "PAYING",
    "PAID": "PAID",
    "CANC": "CANCELLED",
    "EXP": "EXPIRED",
    "PART": "PARTIALLY_REFUNDED",
    "REFD": "REFUNDED",
}
# AWAITING_PAYMENT → PAYING → PAID → (PARTIALLY_REFUNDED →) REFUNDED; AWAITING_PAYMENT →
# CANCELLED or EXPIRED; an attempt that ends unpaid gives the order back to the payer.
ORDER_MOVES = """
event                  AWAIT   PAYING  PAID   CANC  EXP   PART   REFD
ATTEMPT_STARTED        PAYING  -       -      -     -     -      -
ATTEMPT_SUCCEEDED      -       PAID    -      -     -     -      -
ATTEMPT_ENDED_UNPAID   -       AWAIT   -      -     -     -      -
CANCEL                 CANC    -       -      -     -     -      -
EXPIRE                 EXP     -       -      -     -     -      -
REFUND_PART            -       -       PART   -     -     PART   -
REFUND_REST            -       -       REFD   -     -     REFD   -
"""

ATTEMPT_STATES = {
    "SUB": "SUBMITTED",
    "PAYER": "AWAITING_PAYER",
    "UNK": "UNKNOWN",
    "REVG": "REVERSING",
    "OK": "SUCCEEDED",
    "FAIL": "FAILED",
    "REVD": "REVERSED",
    "LSR": "LATE_SUCCESS_REFUNDED",
}
# An attempt waits on the payer or on an unclear answer until the provider decides or a
# reversal starts; a reversal ends reversed, given up (FAILED, followed up), or paid (a QR
# payer who paid before the close). After the end, only the follow-up of an unpaid attempt
# moves: cleared, or a late success that is refunded.
ATTEMPT_MOVES = """
event                   SUB    PAYER  UNK    REVG   OK  FAIL  REVD  LSR
PAYER_CONFIRMING        PAYER  -      PAYER  -      -   -     -     -
QR_CODE_READY           PAYER  -      -      -      -   -     -     -
PAID                    OK     OK     OK     OK     -   -     -     -
DECLINED                FAIL   FAIL   FAIL   -      -   -     -     -
NO_ANSWER               UNK    UNK    -      -      -   -     -     -
REVERSAL_STARTED        REVG   REVG   REVG   -      -   -     -     -
REVERSED                -      -      -      REVD   -   -     -     -
REVERSAL_ABANDONED      -      -      -      FAIL   -   -     -     -
FOLLOW_UP_CLEARED       -      -      -      -      -   FAIL  REVD  -
LATE_SUCCESS            -      -      -      -      -   FAIL  REVD  -
LATE_SUCCESS_REFUNDED   -      -      -      -      -   LSR   LSR   -
"""


def cells(table: str, names: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(state, event, target or None) for every cell of a table."""
    header, *rows = table.strip().splitlines()
    columns = header.split()[1:]
    found = []
    for row in rows:
        event, *targets = row.split()
        assert len(targets) == len(columns), row
        for column, target in zip(columns, targets, strict=True):
            found.append((names[column], event, None if target == "-" else names[target]))
    return found


ORDER_CELLS = cells(ORDER_MOVES, ORDER_STATES)
ATTEMPT_CELLS = cells(ATTEMPT_MOVES, ATTEMPT_STATES)


def test_the_tables_name_every_state_and_event() -> None:
    assert {s.value for s in OrderState} == set(ORDER_STATES.values())
    assert {s.value for s in AttemptState} == set(ATTEMPT_STATES.values())
    assert {e.value for e in OrderEvent} == {event for _, event, _ in ORDER_CELLS}
    assert {e.value for e in AttemptEvent} == {event for _, event, _ in ATTEMPT_CELLS}
    assert len(ORDER_CELLS) == 7 * 7 and len(ATTEMPT_CELLS) == 8 * 11


@pytest.mark.parametrize(("state", "event", "target"), ORDER_CELLS)
def test_every_order_move(state: str, event: str, target: str | None) -> None:
    if target is None:
        with pytest.raises(
            IllegalTransition, match=f"^order in state {state} cannot take {event}$"
        ):
            next_order_state(OrderState(state), OrderEvent(event))
    else:
        assert next_order_state(OrderState(state), OrderEvent(event)) == target


@pytest.mark.parametrize(("state", "event", "target"), ATTEMPT_CELLS)
def test_every_attempt_move(state: str, event: str, target: str | None) -> None:
    if target is None:
        with pytest.raises(
            IllegalTransition, match=f"^attempt in state {state} cannot take {event}$"
        ):
            next_attempt_state(AttemptState(state), AttemptEvent(event))
    else:
        assert next_attempt_state(AttemptState(state), AttemptEvent(event)) == target


def test_the_closed_orders_and_the_final_attempts() -> None:
    assert {s.value for s in CLOSED_ORDER_STATES} == {
        "PAID", "CANCELLED", "EXPIRED", "PARTIALLY_REFUNDED", "REFUNDED",
    }  # fmt: skip
    assert {s.value for s in FINAL_ATTEMPT_STATES} == {
        "SUCCEEDED", "FAILED", "REVERSED", "LATE_SUCCESS_REFUNDED",
    }  # fmt: skip


def reachable(start: AttemptState) -> set[AttemptState]:
    """Every attempt state `start` can reach, by asking next_attempt_state itself."""
    seen, frontier = {start}, [start]
    while frontier:
        state = frontier.pop()
        for event in AttemptEvent:
            try:
                target = next_attempt_state(state, event)
            except IllegalTransition:
                continue
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


@pytest.mark.parametrize("start", ["SUBMITTED", "AWAITING_PAYER", "UNKNOWN", "REVERSING"])
def test_every_unfinished_attempt_can_still_end(start: str) -> None:
    """ "Unknown" is never final, and never a dead end (invariant 5)."""
    assert reachable(AttemptState(start)) & {
        AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.REVERSED,
    }  # fmt: skip
