"""Property tests against the running front door over mutual TLS: generated messages,
built from the proto descriptors, sent to every RPC as every kind of principal, and raw
bytes that are no message at all.

Every answer must be OK or one of the expected refusals (REFUSALS); anything else fails,
DEADLINE_EXCEEDED and UNAVAILABLE included, and so does a stream that hangs. Before each
watch the fuzzer gives it something to say (an open order at the window a WatchWindow
follows, a payment a WatchPayments subscriber is told of), so a stream that neither
answers nor ends has hung. The server must stay up, and every refusal must store nothing
(the Redis key count and the journals of the orders the fuzzer aims at are the same
before and after).

WINDOWPAY_FUZZ_EXAMPLES sets the number of cases (2,000 in the suite; `make fuzz` runs
20,000)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.access import client
from orchestrator.access.tls import ServerTls
from orchestrator.bootstrap import start_front_door
from orchestrator.domain import ids
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.receipts import issuer
from orchestrator.record import drainer
from orchestrator.store import keys
from tests.e2e.conftest import Deployed
from tests.support import eventually

EXAMPLES = int(os.environ.get("WINDOWPAY_FUZZ_EXAMPLES", "2000"))
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.ABORTED,
}
CLEAN = {"OK", *(code.name for code in REFUSALS)}
HUNG = "HUNG"  # a stream that neither answers nor ends though it has something to say
ANSWER_WITHIN_S = 10.0  # a live stream with something to say answers in milliseconds
PRINCIPALS = ("business", "backoffice", "auditor", "monitor", "G1T1", "G1T2", "G2T1")
AIMED_WINDOWS = ("G1W1", "G1W2", "G2W1")  # the windows of the orders the fuzzer aims at
# Above the 64 KiB request limit: field 1 (a string in every request) of 70,000 bytes.
OVERSIZE = b"\x0a\xb0\xa2\x04" + b"x" * 70_000
TRICKY = ("", "B1\n", "G1-", "-", "G1--X", "١٢٣", "\u202e", "\x00", "G1W1 ", "Ｇ1W1", "%s%n")


@dataclass(frozen=True)
class Rpc:
    path: str
    request: d.Descriptor
    response: d.Descriptor
    streaming: bool


def rpcs() -> list[Rpc]:
    found = [
        Rpc(f"/{service.full_name}/{m.name}", m.input_type, m.output_type, m.server_streaming)
        for service in pb.DESCRIPTOR.services_by_name.values()
        for m in service.methods
    ]
    check = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    found.append(Rpc("/grpc.health.v1.Health/Check", check.input_type, check.output_type, False))
    return found


def values(field: d.FieldDescriptor, known: list[str], depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == d.FieldDescriptor.TYPE_STRING:
        return st.one_of(
            st.sampled_from(known),
            st.sampled_from(TRICKY),
            st.text(max_size=80),
        )
    if kind == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == d.FieldDescriptor.TYPE_ENUM:
        return st.integers(-2, 12)  # unknown values too (proto3 enums are open)
    if kind in (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32):
        return st.one_of(st.integers(-5, 10_000), st.integers(-(2**31), 2**31 - 1))
    if kind in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64):
        return st.one_of(st.integers(-5, 100_000), st.integers(-(2**63), 2**63 - 1))
    if kind == d.FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, known, depth + 1)
    return st.just(None)


def messages(descriptor: d.Descriptor, known: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of any field values; each oneof has at most one member set."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 2:
        return st.just(cls())
    fields = {}
    for field in descriptor.fields:
        value = values(field, known, depth)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        fields[field.name] = st.none() | value
    oneofs = {
        o.name: st.sampled_from([None, *(f.name for f in o.fields)]) for o in descriptor.oneofs
    }

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Any:
        chosen = {name: draw(strategy) for name, strategy in oneofs.items()}
        message = cls()
        for field in descriptor.fields:
            if (
                field.containing_oneof is not None
                and chosen[field.containing_oneof.name] != field.name
            ):
                continue
            value = draw(fields[field.name])
            if value is None:
                continue
            # a value protobuf itself refuses (a lone surrogate...) is left unset
            with contextlib.suppress(TypeError, ValueError):
                _set(message, field, value)
        return message

    return build()


def _set(message: Any, field: d.FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if field.is_repeated:
        if field.type == d.FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


@dataclass
class Case:
    principal: str
    rpc: Rpc
    payload: Any  # a message, or raw bytes that may be no message at all


def cases(known: list[str]) -> st.SearchStrategy[Case]:
    def of(rpc: Rpc) -> st.SearchStrategy[Case]:
        message = messages(rpc.request, known)
        raw = st.one_of(st.binary(max_size=200), st.just(OVERSIZE))
        payload = st.one_of(message, message, message, raw)
        return st.builds(Case, st.sampled_from(PRINCIPALS), st.just(rpc), payload)

    return st.one_of([of(rpc) for rpc in rpcs()])


# The consumer groups of the deployment's own background work.
BACKGROUND = {issuer.GROUP, drainer.GROUP}


def text(info: dict[Any, Any]) -> dict[str, Any]:
    """An XINFO answer with its keys and ids as text, whichever way the client decodes."""
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in info.items()
    }


class Fuzzer:
    def __init__(self, deployed: Deployed, address: str, aimed_at: list[str]) -> None:
        self.deployed = deployed
        self.redis = deployed.store.redis
        self.channels = {p: client.of_pki(deployed.pki_dir, p).channel(address) for p in PRINCIPALS}
        self.aimed_at = aimed_at
        self.codes: Counter[str] = Counter()

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

    async def footprint(self) -> tuple[int, ...]:
        """The key count and the length of each aimed-at order's journal."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.dbsize()
        for order_id in self.aimed_at:
            pipe.llen(keys.journal(ids.service_point_of(order_id), order_id))
        return tuple(int(n) for n in await pipe.execute())

    async def quiet(self) -> tuple[int, ...]:
        """The footprint once background work (receipts, provider follow-ups) settles,
        and no payment stream holds a subscriber's lease: a stream that ended (here, or
        in a test before) lets its lease go a moment later, or when it lapses (10 s),
        which would read as a key a refused call removed."""
        await eventually(self.leases, lambda held: held == [], within=30, every=0.1)
        await eventually(self.backlog, lambda behind: behind == [], within=60, every=0.1)
        last = await self.footprint()
        for _ in range(30):
            await asyncio.sleep(0.1)
            now = await self.footprint()
            if now == last:
                return now
            last = now
        return last

    async def backlog(self) -> list[str]:
        """The streams some consumer group (the receipt issuer, the record's drainer) has
        not read to the end and acknowledged: the background work a payment leaves, which
        writes keys (a receipt) after its answer. On a loaded machine it can pause longer
        than the footprint's steady spell, so it is waited for by name."""
        streams = [keys.RECEIPT_CHANGES]
        for sp in self.deployed.config.deployment.service_points:
            streams += [keys.outbox(sp.id), keys.changes(sp.id)]
        behind = []
        for stream in streams:
            if not await self.redis.exists(stream):
                continue
            last = text(await self.redis.xinfo_stream(stream))["last-generated-id"]
            for group in map(text, await self.redis.xinfo_groups(stream)):
                if group["name"] not in BACKGROUND:
                    continue  # a business system's subscription, read when it watches
                if int(group["pending"]) or group["last-delivered-id"] != last:
                    behind.append(f"{stream} {group['name']}")
        return behind

    async def leases(self) -> list[bytes]:
        return [key async for key in self.redis.scan_iter(match=keys.lease("*"), count=1000)]

    async def call(self, case: Case) -> str:
        """The answer's status name, or HUNG. The deadline is past the longest a call may
        rightly take (a Pay held until its outcome): exceeding it is a hang too."""
        channel = self.channels[case.principal]
        raw = isinstance(case.payload, bytes)
        encode = None if raw else type(case.payload).SerializeToString
        decode = message_factory.GetMessageClass(case.rpc.response).FromString
        try:
            if case.rpc.streaming:
                return await self.watch(channel.unary_stream(case.rpc.path, encode, decode), case)
            await channel.unary_unary(case.rpc.path, encode, decode)(case.payload, timeout=60)
            return grpc.StatusCode.OK.name
        except grpc.aio.AioRpcError as error:
            return error.code().name

    async def watch(self, method: Any, case: Case) -> str:
        """A stream must answer or end at once: `prepare` gave every watch that may be
        accepted something to say."""
        stream = method(case.payload, timeout=60)
        try:
            message = await asyncio.wait_for(stream.read(), ANSWER_WITHIN_S)
            return "OK" if message is not grpc.aio.EOF else (await stream.code()).name
        except TimeoutError:
            return HUNG
        finally:
            stream.cancel()

    async def prepare(self, case: Case) -> None:
        """Before a watch: an open order at the window a WatchWindow would follow, a
        payment for a WatchPayments subscriber to be told of. Then wait for quiet, so
        that the call's own footprint is measured alone."""
        request = case.payload
        if isinstance(request, bytes):
            try:
                request = message_factory.GetMessageClass(case.rpc.request).FromString(request)
            except DecodeError:
                return  # the server cannot take it either
        if case.rpc.path.endswith("/WatchWindow"):
            window = self.deployed.config.deployment.terminal_window.get(request.terminal_id)
            if window is None:
                return
            await self.deployed.create(window)
        elif case.rpc.path.endswith("/WatchPayments"):
            await self.pay_somewhere()
        else:
            return
        await self.quiet()

    async def pay_somewhere(self) -> None:
        """A cash payment at the first free window the fuzzer does not aim at."""
        for window in sorted(self.deployed.config.deployment.window_service_point):
            if window in AIMED_WINDOWS:
                continue
            order = await self.deployed.create(window)
            try:
                await self.deployed.terminal_of_order(order).Pay(
                    self.deployed.pay_request(order, Channel.CASH), timeout=30
                )
                return
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.FAILED_PRECONDITION:  # window busy
                    raise
        raise AssertionError("no window free for a payment")

    async def one(self, case: Case) -> None:
        await self.prepare(case)
        before = await self.footprint()
        code = await self.call(case)
        self.codes[code] += 1
        assert code in CLEAN, (case.principal, case.rpc.path, code)
        if code != "OK":
            assert await self.footprint() == before, ("a refused call stored something", case)
        else:
            await self.quiet()


@pytest.mark.timeout(max(600, EXAMPLES // 5))
async def test_every_rpc_as_every_principal_answers_cleanly_and_refusals_store_nothing(
    deployed: Deployed,
) -> None:
    # A front door of its own on the same actors, without the terminals' rate limit, so
    # that the fuzzer reaches past it to the checks behind.
    config = deployed.config
    loose = replace(config.access.limits, terminal_rate=1e6, terminal_burst=10**6)
    stack = AsyncExitStack()
    server = await start_front_door(
        replace(config, access=replace(config.access, limits=loose)),
        deployed.redis_url, dict(deployed.actors.submitters), stack,
        ServerTls.of_pki(deployed.pki_dir), deployed.pki_dir,
    )  # fmt: skip
    orders = [await deployed.create(w) for w in AIMED_WINDOWS]
    paid = await deployed.terminal_of_order(orders[1]).Pay(
        deployed.pay_request(orders[1], Channel.CASH), timeout=30
    )
    known = [
        *(o.order_id for o in orders), *(o.business_no for o in orders),
        "G1W1", "G1W2", "G2W1", "G1T1", "G1T2", "G2T1", "business", "G1S", "PLT-AUTO",
        paid.attempts[0].attempt_id, uuid.uuid4().hex, "2026-11-29",
    ]  # fmt: skip
    fuzzer = Fuzzer(deployed, server.address, [o.order_id for o in orders])
    loop = asyncio.get_running_loop()

    def run(coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=120)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(known))
    def property_holds(case: Case) -> None:
        run(fuzzer.one(case))

    try:
        await fuzzer.quiet()
        await asyncio.to_thread(property_holds)
        health = await fuzzer.channels["monitor"].unary_unary(
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest.SerializeToString,
            health_pb2.HealthCheckResponse.FromString,
        )(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # still up
    finally:
        await fuzzer.close()
        await stack.aclose()
    total = sum(fuzzer.codes.values())
    print(f"fuzz: {total} calls, statuses {dict(fuzzer.codes)}")
    assert total >= EXAMPLES
