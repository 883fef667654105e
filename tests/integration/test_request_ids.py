"""Business principals kept apart, against a real Redis and ServicePointCore behind the
front door (no Ray). Request ids are each principal's own: the front door scopes them by
the caller, so a principal that uses (or pre-claims) an id another will use neither
replays nor blocks that one's command, and the same principal still replays its own. An
order records the business principal that created it: another can neither read nor
cancel it, and its payment events never reach another's stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.access import caller
from orchestrator.access.caller import serving
from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.domain import ids
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import Command, CreateOrder, Done, Pay, Result
from orchestrator.domain.errors import NotFound
from orchestrator.domain.principals import Principal, Role
from orchestrator.frontdoor.door import FrontDoor
from orchestrator.frontdoor.servicers import BusinessGatewayServicer
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.outbox import Subscriptions
from orchestrator.store.reads import RedisOrderReads
from orchestrator.store.redis_store import RedisStore
from tests.support import PROVIDER_CHANNELS, new_id, small_config, unique_prefix


class Refused(Exception):
    pass


class Context:
    async def abort(self, code: Any, message: str) -> None:
        raise Refused(f"{code.name} {message}")


class CoreRouter:
    def __init__(self, core: ServicePointCore, sps: list[str]) -> None:
        self.core = core
        self.sps = sps

    def serves(self, sp: str) -> bool:
        return sp in self.sps

    def route(self, order_id: str) -> str:
        try:
            sp = ids.service_point_of(order_id)
        except ids.MalformedOrderId:
            sp = ""
        if sp not in self.sps:
            raise NotFound(f"order {order_id} not found")
        return sp

    async def call(self, sp: str, command: Command) -> Result:
        [result] = await self.core.submit([command])
        return result


@pytest.fixture(autouse=True)
async def no_caller_left() -> AsyncIterator[None]:
    """These tests play the interceptor (serving); pytest-asyncio runs async tests and
    fixtures in one shared context, so the caller must not outlive the test."""
    yield
    caller._CALLER.set(None)


@pytest.fixture
async def door(redis: Redis) -> AsyncIterator[FrontDoor]:
    config = small_config(prefix=unique_prefix(), service_points=1, windows=2)
    banks = {ch: SandboxBank(ch.value, Timing(time_scale=0.05)) for ch in PROVIDER_CHANNELS}
    providers = {ch: SandboxProvider(ch, banks[ch]) for ch in PROVIDER_CHANNELS}
    sps = [sp.id for sp in config.deployment.service_points]
    core = ServicePointCore(sps, config, RedisStore(redis), providers, on_fatal=print)
    await core.start()
    reads, subscriptions = RedisOrderReads(redis), Subscriptions(redis, sps)
    yield FrontDoor(config, reads, subscriptions, CoreRouter(core, sps), None, None)  # type: ignore[arg-type]
    await core.stop()


async def create_as(door: FrontDoor, principal: str, request_id: str, case: str) -> str:
    serving(Principal(principal, Role.BUSINESS))
    window = door.config.deployment.service_points[0].windows[0]
    sp = door.config.deployment.window_service_point[window]
    command = CreateOrder(request_id, case, window, "张三", (RequestedLine("PLT-AUTO", 1),))
    result = await door.call(Context(), sp, command)  # type: ignore[arg-type]
    assert isinstance(result, Done)
    order_id: str = orjson.loads(result.order)["order_id"]
    return order_id


async def test_a_request_id_is_each_principals_own(door: FrontDoor) -> None:
    request_id, their_case, my_case = new_id("CASE"), new_id("B"), new_id("B")
    theirs = await create_as(door, "biz2", request_id, their_case)
    # Another principal's use of the id neither blocks nor replays this one's command.
    mine = await create_as(door, "business", request_id, my_case)
    assert mine != theirs
    # Each principal still replays its own, and is refused other parameters under it.
    assert await create_as(door, "business", request_id, my_case) == mine
    assert await create_as(door, "biz2", request_id, their_case) == theirs
    with pytest.raises(Refused, match="ALREADY_EXISTS"):
        await create_as(door, "business", request_id, new_id("B"))


async def test_a_business_principal_cannot_read_or_cancel_anothers_order(
    door: FrontDoor,
) -> None:
    case = new_id("B")
    order_id = await create_as(door, "business", new_id(), case)
    gateway = BusinessGatewayServicer(door)
    serving(Principal("biz2", Role.BUSINESS))
    for request in (pb.GetOrderRequest(order_id=order_id), pb.GetOrderRequest(business_no=case)):
        with pytest.raises(Refused, match="NOT_FOUND") as refused:
            await gateway.GetOrder(request, Context())  # type: ignore[arg-type]
        assert "another" not in str(refused.value)  # answered as if it did not exist
    cancel = pb.CancelOrderRequest(request_id=new_id(), order_id=order_id, reason="dup")
    with pytest.raises(Refused, match="NOT_FOUND"):
        await gateway.CancelOrder(cancel, Context())  # type: ignore[arg-type]
    # Nor can it take over the case with an order of its own.
    with pytest.raises(Refused, match="FAILED_PRECONDITION"):
        await create_as(door, "biz2", new_id(), case)
    serving(Principal("business", Role.BUSINESS))
    mine = await gateway.GetOrder(pb.GetOrderRequest(order_id=order_id), Context())  # type: ignore[arg-type]
    assert mine.state == pb.AWAITING_PAYMENT
    cancelled = await gateway.CancelOrder(cancel, Context())  # type: ignore[arg-type]
    assert cancelled.state == pb.CANCELLED
    snapshot = await door.reads.order(order_id)
    assert snapshot is not None and orjson.loads(snapshot)["created_by"] == "business"


def test_a_business_principal_reaches_its_own_orders_and_those_made_before(
    door: FrontDoor,
) -> None:
    """What the payment stream, GetReceipt, GetOrder and CancelOrder all ask."""
    mine, theirs, before = "business", "biz2", ""  # "": made before orders recorded it
    serving(Principal("business", Role.BUSINESS))
    assert door.in_reach(mine) and door.in_reach(before) and not door.in_reach(theirs)
    serving(Principal("auditor", Role.AUDITOR))  # other roles: as the access table says
    assert door.in_reach(theirs)


async def test_who_cancelled_comes_from_the_callers_identity_not_the_reason(
    door: FrontDoor, redis: Redis
) -> None:
    from orchestrator.console.commands import RouterCommands

    gateway = BusinessGatewayServicer(door)
    forged = "duplicate [console: director]"
    by_business = await create_as(door, "business", new_id(), new_id("B"))
    cancel = pb.CancelOrderRequest(request_id=new_id(), order_id=by_business, reason=forged)
    await gateway.CancelOrder(cancel, Context())  # type: ignore[arg-type]
    by_console = await create_as(door, "business", new_id(), new_id("B"))
    commands = RouterCommands(door.router)
    assert await commands.cancel(by_console, "申请人撤回业务", "head") is None
    entries = {}
    for order_id in (by_business, by_console):
        journal = await RedisStore(redis).journal(order_id)
        entries[order_id] = orjson.loads(journal[-1])
    assert entries[by_business]["by"] == "principal: business"
    assert entries[by_business]["detail"] == forged  # the text, attributed to no one
    assert entries[by_console]["by"] == "console: head"
    assert entries[by_console]["detail"] == "申请人撤回业务"


async def test_an_answer_out_of_reach_reads_as_nothing_found(door: FrontDoor) -> None:
    """The interceptor answers a read out of the caller's reach with the words the
    servicer uses when nothing is found: the two cannot be told apart."""
    from orchestrator.access.interceptor import not_found_text
    from orchestrator.frontdoor.backoffice import ReceiptsServicer

    serving(Principal("business", Role.BUSINESS))
    gateway, receipts = BusinessGatewayServicer(door), ReceiptsServicer(door)
    sp = door.config.deployment.service_points[0].id
    number = pb.ReceiptNumber(receipt_code="12345678", receipt_no="0000000001", check_code="K7Q2MX")
    for call, request in (
        (gateway.GetOrder, pb.GetOrderRequest(order_id=f"{sp}-NOSUCHORDER000")),
        (gateway.GetOrder, pb.GetOrderRequest(business_no=new_id("B"))),
        (receipts.GetReceipt, pb.GetReceiptRequest(order_id=f"{sp}-NOSUCHORDER000")),
        (receipts.GetReceipt, pb.GetReceiptRequest(number=number)),
    ):
        with pytest.raises(Refused) as missing:
            await call(request, Context())  # type: ignore[operator]
        assert str(missing.value) == f"NOT_FOUND {not_found_text(request)}"


async def test_a_business_systems_payment_stream_shows_its_own_paid_orders(
    door: FrontDoor, redis: Redis
) -> None:
    """WatchPayments through the front door's subscriptions (store/outbox.py): another
    business system's payment is passed over (acknowledged for this subscriber, never
    shown), its own is shown and acknowledged, and the stream's lease is let go when
    the stream ends."""
    from orchestrator.domain.states import Channel
    from orchestrator.frontdoor.payments import PaymentStream
    from orchestrator.store import keys

    window = door.config.deployment.service_points[0].windows[0]
    sp = door.config.deployment.window_service_point[window]
    theirs = await create_as(door, "biz2", new_id(), new_id("B"))
    mine = await create_as(door, "business", new_id(), new_id("B"))
    for order_id in (theirs, mine):  # paid in this order: the other's event comes first
        pay = Pay(new_id(), f"{sp}T1", window, order_id, Channel.CASH, "", 20000)
        assert isinstance(await door.call(Context(), sp, pay), Done)  # type: ignore[arg-type]
    subscriber = new_id("sub")
    serving(Principal("business", Role.BUSINESS))
    payments = PaymentStream(door)
    stream = payments.watch(pb.WatchPaymentsRequest(subscriber_id=subscriber), Context())  # type: ignore[arg-type]
    try:
        event = await asyncio.wait_for(anext(stream), 10)
        assert event.kind == pb.ORDER_PAID and event.order.order_id == mine
        assert await redis.exists(keys.lease(subscriber)) == 1
        request = pb.AckPaymentsRequest(subscriber_id=subscriber, event_ids=[event.event_id])
        acked = await payments.ack(request, Context())  # type: ignore[arg-type]
        assert acked.acknowledged == 1
    finally:
        await stream.aclose()
    assert await redis.exists(keys.lease(subscriber)) == 0
