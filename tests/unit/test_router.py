import asyncio
from collections.abc import Sequence

from orchestrator.domain.commands import CancelOrder, Command, Done, Rejected, Result
from orchestrator.domain.errors import ErrorCode
from orchestrator.frontdoor.router import Router


class Recorder:
    def __init__(self, name: str, delay: float = 0.01, fail: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.fail = fail
        self.batches: list[int] = []
        self.concurrent = 0
        self.most_concurrent = 0

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        self.batches.append(len(commands))
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise ConnectionError("actor died")
            return [Done(c.request_id.encode()) for c in commands]
        finally:
            self.concurrent -= 1


def cancel(i: int) -> CancelOrder:
    return CancelOrder(f"r{i}", "SP01-X", "")


async def test_calls_for_one_actor_are_coalesced_into_batches() -> None:
    actor = Recorder("a")
    router = Router({"SP01": actor, "SP02": actor}, max_batch=50, in_flight=2)
    results = await asyncio.gather(
        *(router.call("SP01" if i % 2 else "SP02", cancel(i)) for i in range(200))
    )
    assert [r.order for r in results] == [f"r{i}".encode() for i in range(200)]  # type: ignore[union-attr]
    assert sum(actor.batches) == 200
    assert len(actor.batches) <= 6
    assert max(actor.batches) <= 50
    assert actor.most_concurrent <= 2


async def test_a_lone_call_goes_at_once() -> None:
    actor = Recorder("a", delay=0)
    router = Router({"SP01": actor})
    assert isinstance(await router.call("SP01", cancel(1)), Done)
    assert actor.batches == [1]


async def test_each_actor_has_its_own_lane() -> None:
    one, two = Recorder("one"), Recorder("two")
    router = Router({"SP01": one, "SP02": two})
    await asyncio.gather(router.call("SP01", cancel(1)), router.call("SP02", cancel(2)))
    assert one.batches == [1] and two.batches == [1]


async def test_a_failed_actor_call_answers_unavailable_with_advice() -> None:
    router = Router({"SP01": Recorder("dead", fail=True)})
    result = await router.call("SP01", cancel(1))
    assert isinstance(result, Rejected)
    assert result.code is ErrorCode.UNAVAILABLE
    assert "same request_id" in result.message
