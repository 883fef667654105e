"""The front door's part in observability: a gRPC interceptor counting and timing every
call, the HTTP endpoint serving /metrics and /sd (Prometheus HTTP service discovery of
every windowpay process), the gauges it keeps fresh from Redis, and the health loop that
tells load balancers whether Redis and every actor are ready."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
import orjson
from aiohttp import web
from grpc_health.v1 import health_pb2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.access.supervisors import Verdict
from orchestrator.audit.job import summarise
from orchestrator.frontdoor.router import Router, Submitter
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.metrics import (
    ACTOR_BATCH_PATHS,
    ACTOR_BATCHES,
    ACTOR_QUEUE_DEPTH,
    AUDIT_DAYS_BROKEN,
    AUDIT_LAST_VERIFIED,
    GRPC_DURATION,
    GRPC_REQUESTS,
    PROVIDERS,
    RECONCILIATION_DIFFERENCES,
    RECONCILIATION_LAST_RUN,
    RECONCILIATION_MATCHED_FEN,
    RECONCILIATION_UNEXPLAINED,
    SERVICE_POINT_EPOCH,
    access_at_zero,
)
from orchestrator.reconcile.matcher import Kind
from orchestrator.store import keys
from orchestrator.telemetry import discovered_targets

log = logging.getLogger(__name__)


def _names(method: str) -> tuple[str, str]:
    service, _, name = method.rpartition("/")
    return service.lstrip("/").rpartition(".")[2], name


# What the interceptor measures: windowpay's services and the health service (the
# reflection service's bidirectional stream is not measured).
MEASURED = (
    *pb.DESCRIPTOR.services_by_name.values(),
    health_pb2.DESCRIPTOR.services_by_name["Health"],
)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts every call by status code and times it; streams are timed as a whole.

    A method's wrapped handler is made at its first call and kept (the handlers behind
    it never change while the server runs): later calls skip the interceptor chain."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Any] = {}
        for service in MEASURED:  # every method by every status code, at zero
            for method in service.methods:
                for code in grpc.StatusCode:
                    _series(service.name, method.name, code.name)

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            handler: Any = await continuation(details)
            if handler is None:  # not one of ours: gRPC answers UNIMPLEMENTED (not kept)
                return handler
            wrapped = self._wrapped[details.method] = self._wrap(details.method, handler)
        return wrapped

    @staticmethod
    def _wrap(full_method: str, handler: Any) -> Any:
        record = _Series(*_names(full_method)).record
        if handler.unary_unary is not None:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started, code = time.perf_counter(), "OK"
                try:
                    return await inner(request, context)
                except (RedisError, OSError) as error:
                    code = "UNAVAILABLE"
                    await _unavailable(context, error)
                except BaseException:
                    code = _code(context)
                    raise
                finally:
                    record(code, started)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            streaming: Any = handler.unary_stream

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                started, code = time.perf_counter(), "OK"
                try:
                    async for item in streaming(request, context):
                        yield item
                except (GeneratorExit, asyncio.CancelledError):
                    code = "CANCELLED"  # the caller went away
                    raise
                except (RedisError, OSError) as error:
                    code = "UNAVAILABLE"
                    await _unavailable(context, error)
                except BaseException:
                    code = _code(context)
                    raise
                finally:
                    record(code, started)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        return handler  # reflection's bidirectional stream: not ours to measure


async def _unavailable(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> NoReturn:
    """Redis did not answer (it restarts, or the network to it broke): the caller resends
    with the same request_id, as for any UNAVAILABLE, instead of getting UNKNOWN."""
    log.warning("storage unavailable during a call: %r", error)
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"storage unavailable ({type(error).__name__}); retry with the same request_id",
    )


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    if code is None or code == grpc.StatusCode.OK:
        return "CANCELLED" if context.cancelled() else "UNKNOWN"
    return str(code.name)


_SERIES: dict[tuple[str, str, str], tuple[Any, Any]] = {}  # labelled children, made once


def _series(service: str, method: str, code: str) -> tuple[Any, Any]:
    key = (service, method, code)
    series = _SERIES.get(key)
    if series is None:  # bounded: our methods times the status codes
        series = _SERIES[key] = (
            GRPC_REQUESTS.labels(service, method, code),
            GRPC_DURATION.labels(service, method),
        )
    return series


class _Series:
    """A method's series: its OK counter and its histogram are found once, when the
    method's handler is wrapped, not at each call."""

    __slots__ = ("_method", "_ok", "_service", "_timed")

    def __init__(self, service: str, method: str) -> None:
        self._service, self._method = service, method
        self._ok, self._timed = _series(service, method, "OK")

    def record(self, code: str, started: float) -> None:
        counted = self._ok if code == "OK" else _series(self._service, self._method, code)[0]
        counted.inc()
        self._timed.observe(time.perf_counter() - started)


def start_at_zero() -> None:
    """Create the front door's labelled series whose label values are known at start
    (the gRPC ones come with the interceptor), at zero."""
    for provider in PROVIDERS:
        RECONCILIATION_MATCHED_FEN.labels(provider)
        for kind in Kind:
            RECONCILIATION_DIFFERENCES.labels(provider, kind.value)
    for path in ACTOR_BATCH_PATHS:
        ACTOR_BATCHES.labels(path)
    methods = [
        m.name for service in pb.DESCRIPTOR.services_by_name.values() for m in service.methods
    ]
    access_at_zero(methods, [verdict.value for verdict in Verdict])


class MetricsEndpoint:
    """127.0.0.1:9464/metrics (this front door) and /sd (every windowpay process)."""

    def __init__(self, redis: Redis, router: Router, service_points: Sequence[str]) -> None:
        self._redis = redis
        self._router = router
        self._service_points = list(service_points)
        self.app = web.Application()
        self.app.add_routes([web.get("/metrics", self._metrics), web.get("/sd", self._sd)])
        self._runner: web.AppRunner | None = None
        self.address = ""
        start_at_zero()

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.address = f"{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        for lane in self._router.lanes:
            ACTOR_QUEUE_DEPTH.labels(lane.name).set(lane.depth)
        try:
            await self._refresh_from_redis()
        except (RedisError, OSError) as error:
            log.warning("metrics kept from Redis are stale: %s", error)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _sd(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(await discovered_targets(self._redis)),
            content_type="application/json",
        )

    async def _refresh_from_redis(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for sp in self._service_points:
            pipe.get(keys.epoch(sp))
        pipe.get(keys.RECONCILIATION_SUMMARY)  # written by `windowpay reconcile`
        pipe.hgetall(keys.AUDIT_VERIFIED)
        *epochs, summary, audits = await pipe.execute()
        broken, last_verified = summarise(audits)
        AUDIT_DAYS_BROKEN.set(broken)
        AUDIT_LAST_VERIFIED.set(last_verified)
        for sp, epoch in zip(self._service_points, epochs, strict=True):
            if epoch is not None:
                SERVICE_POINT_EPOCH.labels(sp).set(int(epoch))
        if summary is not None:
            last = orjson.loads(summary)
            RECONCILIATION_UNEXPLAINED.set(last["unexplained"])
            RECONCILIATION_LAST_RUN.set(last["finished_at"])
            for provider, kinds in last["differences"].items():
                for kind, count in kinds.items():
                    RECONCILIATION_DIFFERENCES.labels(provider, kind).set(count)
            for provider, matched in last["matched_fen"].items():
                RECONCILIATION_MATCHED_FEN.labels(provider).set(matched)


async def watch_health(
    redis: Redis,
    submitters: Sequence[Submitter],
    set_serving: Callable[[bool], Awaitable[None]],
    every_s: float = 2.0,
) -> None:
    """SERVING only while Redis answers and every service-point actor is ready."""
    serving: bool | None = None
    while True:
        try:
            await asyncio.wait_for(redis.ping(), every_s)
            await asyncio.wait_for(asyncio.gather(*(s.ready() for s in submitters)), every_s * 2)
            healthy = True
        except Exception as error:  # any failure to answer means not ready
            healthy = False
            if serving is not False:
                log.warning("not serving: %s", str(error) or type(error).__name__)
        if healthy != serving:
            await set_serving(healthy)
            serving = healthy
        await asyncio.sleep(every_s)
