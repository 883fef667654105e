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


async def test_the_interceptor_counts_each_call_under_its_method_and_code() -> None:
    """The series are found once per method, when its handler is wrapped: an OK call
    and a refused one still land in their own method's and code's series."""
    import grpc
    import pytest
    from prometheus_client import REGISTRY

    from orchestrator.frontdoor.telemetry import MetricsInterceptor

    class Details(grpc.HandlerCallDetails):
        method = "/windowpay.v1.Receipts/GetReceipt"
        invocation_metadata = ()

    class Context:
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.NOT_FOUND

        def cancelled(self) -> bool:
            return False

    async def answer(request: bytes, context: object) -> bytes:
        if request == b"missing":
            raise RuntimeError("aborted")  # as context.abort raises, its code set
        return b"receipt"

    async def continuation(details: object) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(answer)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    counted = "windowpay_grpc_requests_total"
    labels = {"service": "Receipts", "method": "GetReceipt"}
    before = {code: sample(counted, **labels, code=code) for code in ("OK", "NOT_FOUND")}
    timed_before = sample("windowpay_grpc_request_duration_seconds_count", **labels)
    handler = await MetricsInterceptor().intercept_service(continuation, Details())
    assert await handler.unary_unary(b"found", Context()) == b"receipt"
    assert await handler.unary_unary(b"found", Context()) == b"receipt"
    with pytest.raises(RuntimeError):
        await handler.unary_unary(b"missing", Context())
    after = {code: sample(counted, **labels, code=code) for code in ("OK", "NOT_FOUND")}
    assert {code: after[code] - before[code] for code in after} == {"OK": 2, "NOT_FOUND": 1}
    timed = sample("windowpay_grpc_request_duration_seconds_count", **labels) - timed_before
    assert timed == 3
