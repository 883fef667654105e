"""A front-door call that meets an unreachable Redis answers UNAVAILABLE (resend with the
same request_id), never UNKNOWN: a real grpc.aio server on loopback with the front
door's interceptor, and a handler whose storage is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from orchestrator.frontdoor.telemetry import MetricsInterceptor


async def fails(request: bytes, context: Any) -> bytes:
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379")


async def fails_streaming(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"first"
    raise RedisConnectionError("Connection closed by server")


async def fails_otherwise(request: bytes, context: Any) -> bytes:
    raise ValueError("a bug, not an outage")


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[MetricsInterceptor()])
    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(fails),
        "Watch": grpc.unary_stream_rpc_method_handler(fails_streaming),
        "Bug": grpc.unary_unary_rpc_method_handler(fails_otherwise),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def test_unary_call_answers_unavailable(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await channel.unary_unary("/t.S/Get")(b"", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry with the same request_id" in (error.value.details() or "")


async def test_stream_answers_unavailable(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for item in channel.unary_stream("/t.S/Watch")(b"", timeout=10):
                received.append(item)
    assert received == [b"first"]
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_other_errors_are_not_disguised(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await channel.unary_unary("/t.S/Bug")(b"", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNKNOWN
