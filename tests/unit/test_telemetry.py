"""Structured logs, health that follows Redis and the actors, and the gRPC interceptor."""

import asyncio
import io
import json
import logging
from collections.abc import Sequence

from orchestrator.domain.commands import Command, Result
from orchestrator.frontdoor.telemetry import _names, watch_health
from orchestrator.telemetry import configure_logging, mask_payer


def test_logs_are_json_lines_with_the_ids_given(capsys: object) -> None:
    configure_logging("info")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    logging.getLogger("windowpay.test").warning(
        "late success", extra={"order_id": "SP01-X", "request_id": "r-1"}
    )
    logging.getLogger("windowpay.test").debug("not shown at info")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "late success"
    assert (record["order_id"], record["request_id"], record["level"]) == (
        "SP01-X",
        "r-1",
        "WARNING",
    )
    assert record["logger"] == "windowpay.test" and "time" in record
    logging.getLogger().handlers.clear()


def test_payer_names_are_masked() -> None:
    assert mask_payer("张三丰") == "张**"
    assert mask_payer("") == ""


def test_grpc_method_names_split_into_service_and_method() -> None:
    assert _names("/windowpay.v1.Terminal/Pay") == ("Terminal", "Pay")
    assert _names("/grpc.health.v1.Health/Check") == ("Health", "Check")


class FakeRedis:
    def __init__(self) -> None:
        self.up = True

    async def ping(self) -> bool:
        if not self.up:
            raise ConnectionError("redis is down")
        return True


class FakeActor:
    name = "sp-X"

    def __init__(self) -> None:
        self.up = True

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        return []

    async def ready(self) -> bool:
        if not self.up:
            await asyncio.sleep(3600)  # a dead actor does not answer
        return True


async def test_health_follows_redis_and_every_actor() -> None:
    redis, actors = FakeRedis(), [FakeActor(), FakeActor()]
    states: list[bool] = []
    changed = asyncio.Event()

    async def set_serving(serving: bool) -> None:
        states.append(serving)
        changed.set()

    async def next_state() -> bool:
        changed.clear()
        await asyncio.wait_for(changed.wait(), 5)
        return states[-1]

    task = asyncio.create_task(watch_health(redis, actors, set_serving, every_s=0.02))  # type: ignore[arg-type]
    try:
        assert await next_state() is True
        redis.up = False
        assert await next_state() is False
        redis.up = True
        assert await next_state() is True
        actors[1].up = False
        assert await next_state() is False
        actors[1].up = True
        assert await next_state() is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
