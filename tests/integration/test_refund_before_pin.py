"""A refund that cannot happen whatever the PIN (nothing paid, too large, cash of
another drawer) is refused before the PIN is looked at: a right PIN and a wrong one get
the same answer, and no PIN is counted. The front door's Refund against a real Redis and
ServicePointCore (no Ray)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.access.caller import serving
from orchestrator.access.supervisors import Decision, Verdict
from orchestrator.domain.principals import Principal, Role
from orchestrator.frontdoor.door import FrontDoor
from orchestrator.frontdoor.servicers import TerminalServicer
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.integration.test_request_ids import Context, Refused, create_as, door
from tests.support import new_id

__all__ = ["door"]  # the fixture, shared

RIGHT = "135790"


class Supervisors:
    """Says OK to the right PIN; records every PIN it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def approve(self, supervisor_id: str, pin: str, sp: str, terminal: str) -> Decision:
        self.asked.append(pin)
        if pin == RIGHT:
            return Decision(Verdict.OK, checked=True)
        return Decision(Verdict.WRONG, "wrong PIN", True)


class Hub:
    """No event feed: a refund refused by the actor answers at once."""

    @contextlib.contextmanager
    def follow_order(self, order_id: str) -> Iterator[None]:
        yield None


async def test_a_refund_that_cannot_happen_is_refused_before_the_pin(door: FrontDoor) -> None:
    supervisors = Supervisors()
    door.supervisors = supervisors  # type: ignore[assignment]
    door.hub = Hub()  # type: ignore[assignment]
    unpaid = await create_as(door, "business", new_id(), new_id("B"))
    window = door.config.deployment.service_points[0].windows[0]
    terminal = next(t for t, w in door.config.deployment.terminal_window.items() if w == window)
    serving(Principal(terminal, Role.TERMINAL, window, window.split("W")[0]))
    answers: list[Any] = []
    for pin in (RIGHT, "000000"):
        request = pb.RefundRequest(
            request_id=new_id(), terminal_id=terminal, order_id=unpaid, amount_fen=10**6,
            reason="test", supervisor_id="S1", supervisor_pin=pin,
        )  # fmt: skip
        with pytest.raises(Refused) as refused:
            await TerminalServicer(door).Refund(request, Context())  # type: ignore[arg-type]
        answers.append(str(refused.value))
    assert answers[0] == answers[1]
    assert answers[0].startswith("FAILED_PRECONDITION") and "nothing to refund" in answers[0]
    assert supervisors.asked == []  # no PIN looked at, none counted
