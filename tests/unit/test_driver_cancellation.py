"""A driver stopped at the very moment the provider answers stops.

Python 3.11's `asyncio.wait_for` returns the answer and drops the cancellation when
both arrive in the same turn of the loop; a driver that bounded its provider calls
with it then ran on, and stopping a service point hung. These tests make the answer
and the cancellation arrive together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from orchestrator.config import load_config
from orchestrator.domain.states import Channel
from orchestrator.providers.engine import RefundDriver, RefundTicket, SystemClock
from orchestrator.providers.port import RefundAnswer, RefundCall, RefundStatus, TradeRef

PLAYBOOK = load_config().playbook(Channel.WECHAT)


class HeldProvider:
    """Answers each refund call when the test says so."""

    channel = Channel.WECHAT

    def __init__(self) -> None:
        self.calls = 0
        self.asked = asyncio.Event()
        self.answer: asyncio.Future[RefundAnswer] = asyncio.get_running_loop().create_future()

    async def refund(self, call: RefundCall) -> RefundAnswer:
        self.calls += 1
        self.asked.set()
        return await self.answer

    refund_query = refund


async def nothing(**_: object) -> None:
    return None


async def stopped_as_it_answers(
    start: Callable[[HeldProvider], Awaitable[None]],
) -> asyncio.Task[None]:
    provider = HeldProvider()
    task = asyncio.create_task(start(provider))
    await asyncio.wait_for(provider.asked.wait(), 5)
    provider.answer.set_result(RefundAnswer(RefundStatus.PENDING))  # the same turn as:
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    if not done:
        task.cancel()  # let the test end either way
        await asyncio.gather(task, return_exceptions=True)
    assert done, "the driver ran on after it was cancelled"
    return task


async def test_a_refund_driver_stopped_as_the_provider_answers_stops() -> None:
    clock = SystemClock()

    async def run(provider: HeldProvider) -> None:
        driver = RefundDriver(provider, PLAYBOOK, clock, nothing)  # type: ignore[arg-type]
        ticket = RefundTicket("R1", TradeRef("T1", 100, 0, "X1"), 100, clock.now_ms())
        await driver.run(ticket)

    task = await stopped_as_it_answers(run)
    assert task.cancelled()
    with pytest.raises(asyncio.CancelledError):
        task.result()
