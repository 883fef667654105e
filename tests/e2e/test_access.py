"""Trust at the front door, over real mutual TLS: who may connect, who may call what,
supervisors' PINs, and the limits that hold against abuse."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from prometheus_client import REGISTRY

from orchestrator.access import client, pki
from orchestrator.access.tls import ServerTls
from orchestrator.bootstrap import start_front_door
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.store.redis_store import RedisStore
from tests.e2e.conftest import Deployed
from tests.support import eventually


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def denied(role: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        "windowpay_access_denied_total", {"role": role, "method": method}
    )
    return value or 0.0


async def journal_and_keys(deployed: Deployed, order_id: str) -> tuple[int, int]:
    store = RedisStore(deployed.server.door.store.redis)
    return len(await store.journal(order_id)), int(await store.redis.dbsize())


async def paid_order(deployed: Deployed, channel: Channel = Channel.WECHAT) -> pb.Order:
    order = await deployed.create(deployed.window())
    answer = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel), timeout=30
    )
    assert answer.state == pb.PAID
    return answer


# ---- who may connect ----------------------------------------------------------------


async def test_no_client_certificate_no_connection(deployed: Deployed) -> None:
    ca = (deployed.pki_dir / "ca.crt").read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(deployed.server.address, credentials) as channel:
        code, _ = await status_of(
            pb_grpc.BusinessGatewayStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="G1-X"), timeout=5
            )
        )
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_no_connection(deployed: Deployed) -> None:
    async with grpc.aio.insecure_channel(deployed.server.address) as channel:
        code, _ = await status_of(
            pb_grpc.BusinessGatewayStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="G1-X"), timeout=5
            )
        )
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_of_another_ca_no_connection(
    deployed: Deployed, tmp_path: Path
) -> None:
    pki.init(tmp_path, ["business"])  # same name, another CA
    rogue = client.of_pki(tmp_path, "business")
    real_ca = (deployed.pki_dir / "ca.crt").read_bytes()
    forged = client.Identity("business", real_ca, rogue.cert, rogue.key)
    async with forged.channel(deployed.server.address) as channel:
        code, _ = await status_of(
            pb_grpc.BusinessGatewayStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="G1-X"), timeout=5
            )
        )
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_revoked_certificate_is_refused_from_the_next_call(deployed: Deployed) -> None:
    order = await deployed.create(deployed.window())
    reader = deployed.stub_as("spare", pb_grpc.BusinessGatewayStub)
    request = pb.GetOrderRequest(order_id=order.order_id)
    assert (await reader.GetOrder(request, timeout=5)).order_id == order.order_id
    authority = pki.Authority(pki.PkiPaths(deployed.pki_dir))
    authority.revoke_client("spare")
    code, details = await status_of(reader.GetOrder(request, timeout=5))  # same connection
    assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details
    authority.issue_client("spare")  # a new certificate under the same name works
    async with client.of_pki(deployed.pki_dir, "spare").channel(deployed.server.address) as ch:
        fresh = pb_grpc.BusinessGatewayStub(ch)
        assert (await fresh.GetOrder(request, timeout=5)).order_id == order.order_id
    code, _ = await status_of(reader.GetOrder(request, timeout=5))  # the old one stays out
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_certificate_of_ours_for_a_name_not_in_the_config_is_denied(
    deployed: Deployed,
) -> None:
    authority = pki.Authority(pki.PkiPaths(deployed.pki_dir))
    authority.issue_client("intruder")
    identity = client.of_pki(deployed.pki_dir, "intruder")
    async with identity.channel(deployed.server.address) as channel:
        code, details = await status_of(
            pb_grpc.BusinessGatewayStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="G1-X"), timeout=5
            )
        )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "intruder" in details


# ---- who may call what --------------------------------------------------------------


async def test_a_terminal_cannot_pay_another_windows_order(deployed: Deployed) -> None:
    window = deployed.window()
    order = await deployed.create(window)
    others = [w for w in deployed.config.deployment.window_service_point if w != window]
    stranger = deployed.terminal_of(others[0])
    before = await journal_and_keys(deployed, order.order_id)
    request = deployed.pay_request(order, Channel.CASH)
    # with its own name: the order is not at its window
    request.terminal_id = stranger
    code, details = await status_of(deployed.terminal_for(stranger).Pay(request, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED and window in details
    # in the name of the order's terminal: the certificate says otherwise
    request.terminal_id = deployed.terminal_of(window)
    request.request_id = uuid.uuid4().hex
    code, details = await status_of(deployed.terminal_for(stranger).Pay(request, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert stranger in details and "/windowpay.v1.Terminal/Pay" in details
    assert (await deployed.get(order.order_id)).state == pb.AWAITING_PAYMENT
    assert (await journal_and_keys(deployed, order.order_id))[0] == before[0]


@pytest.mark.parametrize(
    ("principal", "stub", "method", "request_message"),
    [
        ("G1T1", pb_grpc.BusinessGatewayStub, "CreateOrder", pb.CreateOrderRequest(
            request_id="r-t", business_no="B-T", window_id="G1W1", payer_name="p",
            lines=[pb.OrderLine(fee_code="PLT-AUTO", quantity=1)])),
        ("business", pb_grpc.TerminalStub, "Pay", pb.PayRequest(
            request_id="r-b", terminal_id="G1T1", order_id="G1-X", channel=pb.CASH,
            cash_received_fen=100)),
        ("auditor", pb_grpc.BusinessGatewayStub, "CancelOrder",
            pb.CancelOrderRequest(request_id="r-a", order_id="G1-X")),
        ("auditor", pb_grpc.BackOfficeStub, "SettleLateSuccess", pb.LateSuccessRequest(
            request_id="r-a", order_id="G1-X", attempt_id="G1-X-1", reason="r")),
        ("monitor", pb_grpc.BusinessGatewayStub, "GetOrder", pb.GetOrderRequest(order_id="G1-X")),
        ("backoffice", pb_grpc.TerminalStub, "Refund", pb.RefundRequest(
            request_id="r-o", terminal_id="G1T1", order_id="G1-X", amount_fen=1, reason="r",
            supervisor_id="G1S", supervisor_pin="000000")),
        ("G1T1", pb_grpc.BackOfficeStub, "GetSettlement", pb.SettlementRequest(date="2026-11-29")),
        ("business", pb_grpc.BusinessGatewayStub, "AckPayments",
            pb.AckPaymentsRequest(subscriber_id="someone-else", event_ids=[])),
    ],
)  # fmt: skip
async def test_calls_outside_the_table_are_denied_and_counted(
    deployed: Deployed, principal: str, stub: Any, method: str, request_message: Any
) -> None:
    role = deployed.server.access.interceptor._directory.get(principal).role.value  # type: ignore[union-attr]
    before = denied(role, method)
    keys_before = await deployed.server.door.store.redis.dbsize()
    code, details = await status_of(
        getattr(deployed.stub_as(principal, stub), method)(request_message, timeout=10)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert principal in details and method in details
    assert denied(role, method) == before + 1
    assert await deployed.server.door.store.redis.dbsize() == keys_before


async def test_an_unregistered_subscriber_is_denied(deployed: Deployed) -> None:
    stream = deployed.business.WatchPayments(pb.WatchPaymentsRequest(subscriber_id="curious"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "curious" in (info.value.details() or "")


async def test_a_terminal_reads_only_orders_of_its_own_service_point(deployed: Deployed) -> None:
    order = await deployed.create("G2W1", business_no=f"B-{uuid.uuid4().hex[:10]}")
    mine = deployed.terminal_for("G2T3")
    assert (await mine.GetOrder(pb.GetOrderRequest(order_id=order.order_id))).order_id
    theirs = deployed.terminal_for("G1T1")
    for request in (
        pb.GetOrderRequest(order_id=order.order_id),
        pb.GetOrderRequest(business_no=order.business_no),  # checked on the answer
    ):
        code, details = await status_of(theirs.GetOrder(request, timeout=5))
        assert code == grpc.StatusCode.PERMISSION_DENIED, request
        assert "G1T1" in details


async def test_late_success_only_for_what_reconciliation_found(deployed: Deployed) -> None:
    order = await paid_order(deployed)
    request = pb.LateSuccessRequest(
        request_id=uuid.uuid4().hex, order_id=order.order_id,
        attempt_id=order.attempts[0].attempt_id, provider_trade_no="4200000000",
        reason="invented",
    )  # fmt: skip
    code, details = await status_of(deployed.backoffice.SettleLateSuccess(request, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "reconciliation" in details
    assert not (await deployed.get(order.order_id)).refunds


# ---- supervisors ----------------------------------------------------------------------


async def test_a_wrong_pin_reserves_nothing_and_five_lock_the_supervisor(
    deployed: Deployed,
) -> None:
    order = await deployed.create("G1W2")
    order = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.CASH), timeout=30
    )
    terminal = deployed.terminal_of_order(order)
    pin = deployed.pins["G1L"]
    wrong = "999999" if pin != "999999" else "888888"

    def refund(with_pin: str) -> pb.RefundRequest:
        request = deployed.refund_request(order, 100)
        request.supervisor_id, request.supervisor_pin = "G1L", with_pin
        return request

    journal = (await journal_and_keys(deployed, order.order_id))[0]
    for attempt in range(5):
        code, details = await status_of(terminal.Refund(refund(wrong), timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED, attempt
        assert wrong not in details
    assert "locked" in details
    code, details = await status_of(terminal.Refund(refund(pin), timeout=10))  # right, but locked
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "locked" in details
    after = await deployed.get(order.order_id)
    assert after.refunded_fen == 0 and not after.refunds
    assert (await journal_and_keys(deployed, order.order_id))[0] == journal
    # the count and the lock live in Redis, where every front door sees them
    assert await deployed.server.door.store.redis.exists("wp:pin:lock:G1L")
    stack = AsyncExitStack()
    try:
        other = await start_front_door(
            deployed.config, deployed.redis_url, dict(deployed.actors.submitters), stack,
            ServerTls.of_pki(deployed.pki_dir), deployed.pki_dir,
        )  # fmt: skip
        identity = client.of_pki(deployed.pki_dir, deployed.terminal_of(order.window_id))
        async with identity.channel(other.address) as channel:
            code, details = await status_of(
                pb_grpc.TerminalStub(channel).Refund(refund(pin), timeout=10)
            )
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "locked" in details
    finally:
        await stack.aclose()


async def test_a_supervisor_approves_only_at_their_own_service_point(deployed: Deployed) -> None:
    order = await deployed.create("G2W2")
    order = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.CASH), timeout=30
    )
    request = deployed.refund_request(order, 100)
    request.supervisor_id, request.supervisor_pin = "G1S", deployed.pins["G1S"]
    code, details = await status_of(deployed.terminal_of_order(order).Refund(request, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "G1" in details
    assert (await deployed.get(order.order_id)).refunded_fen == 0


async def test_the_journal_records_supervisor_terminal_and_amount_never_the_pin(
    deployed: Deployed,
) -> None:
    order = await paid_order(deployed, Channel.CASH)
    request = deployed.refund_request(order, 300)
    refunded = await deployed.terminal_of_order(order).Refund(request, timeout=30)
    assert refunded.refunded_fen == 300
    assert request.supervisor_pin not in str(refunded)
    store = deployed.server.door.store
    entries = [orjson.loads(e) for e in await store.journal(order.order_id)]
    entry = next(e for e in entries if e["what"] == "refund")
    assert (entry["supervisor_id"], entry["terminal_id"], entry["amount_fen"]) == (
        request.supervisor_id, request.terminal_id, 300,
    )  # fmt: skip
    stored = b"".join(await store.journal(order.order_id)) + (
        await store.order(order.order_id) or b""
    )
    assert request.supervisor_pin.encode() not in stored


# ---- limits ---------------------------------------------------------------------------


async def test_a_request_above_64_kib_is_refused(deployed: Deployed) -> None:
    request = pb.GetOrderRequest(order_id="G1-" + "X" * 70_000)
    code, _ = await status_of(deployed.business.GetOrder(request, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_500_watch_streams_that_never_read_stay_bounded(deployed: Deployed) -> None:
    limits = deployed.config.access.limits
    terminals = sorted(deployed.config.deployment.terminal_window)
    admitted = len(terminals) * limits.streams
    busy = {"G3T1": "G3W1", "G3T2": "G3W2"}
    # A small flow-control window: the client takes a message or two, then stops reading.
    options = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
    channels = {
        t: client.of_pki(deployed.pki_dir, t).channel(deployed.server.address, options)
        for t in terminals
    }
    watchers = [terminals[i % len(terminals)] for i in range(500)]
    calls = [
        pb_grpc.TerminalStub(channels[t]).WatchWindow(pb.WatchWindowRequest(terminal_id=t))
        for t in watchers
    ]
    hub = deployed.server.door.hub
    gate = deployed.server.access.gate
    try:
        # the streams beyond each terminal's few are refused at once
        await eventually(lambda: _done(calls), lambda n: n >= 500 - admitted, within=60)
        refused = [call for call in calls if call.done()]
        for _ in range(25):  # windows that change faster than a stopped reader reads
            for window in busy.values():
                await deployed.create(window)
                feeds, waiting = hub.waiting()
                assert feeds <= admitted and waiting <= feeds * limits.stream_queue
        # the stopped readers of the busy windows are dropped: their feeds are gone
        await eventually(_feeds_left(hub), lambda n: n == admitted - len(busy) * limits.streams)
        assert all(gate.in_flight(t)[1] == 0 for t in busy)
        assert all(gate.in_flight(t)[1] == limits.streams for t in terminals if t not in busy)
        slow = [c for c, t in zip(calls, watchers, strict=True) if t in busy and c not in refused]
        assert len(refused) == 500 - admitted and len(slow) == len(busy) * limits.streams
        refusals = await asyncio.gather(*(_drain(call) for call in refused))
        drops = await asyncio.wait_for(asyncio.gather(*(_drain(call) for call in slow)), 30)
    finally:
        for call in calls:
            call.cancel()
        for channel in channels.values():
            await channel.close()
    assert all(code == grpc.StatusCode.RESOURCE_EXHAUSTED for code, _ in refusals)
    assert all("streams open" in details for _, details in refusals)
    assert all(code == grpc.StatusCode.RESOURCE_EXHAUSTED for code, _ in drops)
    await eventually(_feeds_left(hub), lambda n: n == 0, within=30)
    assert all(gate.in_flight(t) == (0, 0) for t in terminals)


async def _done(calls: list[Any]) -> int:
    return sum(call.done() for call in calls)


def _feeds_left(hub: Any) -> Any:
    async def probe() -> int:
        return int(hub.waiting()[0])

    return probe


async def _drain(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


# ---- input hardening -------------------------------------------------------------------


async def test_ids_and_codes_are_matched_whole_and_in_ascii(deployed: Deployed) -> None:
    keys_before = await deployed.server.door.store.redis.dbsize()
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex, business_no="B1\n", window_id="G1W1", payer_name="王五",
        lines=[pb.OrderLine(fee_code="PLT-AUTO", quantity=1)],
    )  # fmt: skip
    code, details = await status_of(deployed.business.CreateOrder(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "business_no" in details
    request.business_no, request.payer_name = "B1", "王五\u202e"
    code, details = await status_of(deployed.business.CreateOrder(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "payer_name" in details
    assert await deployed.server.door.store.redis.dbsize() == keys_before
    order = await deployed.create(deployed.window())
    pay = deployed.pay_request(order, Channel.WECHAT)
    pay.auth_code = pay.auth_code[:2] + pay.auth_code[2:].translate(
        str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    )
    code, _ = await status_of(deployed.terminal_of_order(order).Pay(pay, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    pay = deployed.pay_request(order, Channel.CASH)
    pay.cash_received_fen = 2**62
    code, details = await status_of(deployed.terminal_of_order(order).Pay(pay, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cash_received_fen" in details
    assert (await deployed.get(order.order_id)).state == pb.AWAITING_PAYMENT


async def test_ack_payments_takes_at_most_1000_ids(deployed: Deployed) -> None:
    subscriber = deployed.config.access.subscribers[0]
    ids = [f"G1:{i}-0" for i in range(1001)]
    code, details = await status_of(
        deployed.business.AckPayments(
            pb.AckPaymentsRequest(subscriber_id=subscriber, event_ids=ids), timeout=10
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "1000" in details


async def test_each_terminal_is_rate_limited(deployed: Deployed) -> None:
    """A second front door on the same actors, with a tight rate, shows the bound."""
    config = deployed.config
    limits = replace(config.access.limits, terminal_rate=1.0, terminal_burst=3)
    tight = replace(config, access=replace(config.access, limits=limits))
    stack = AsyncExitStack()
    try:
        server = await start_front_door(
            tight, deployed.redis_url, dict(deployed.actors.submitters), stack,
            ServerTls.of_pki(deployed.pki_dir), deployed.pki_dir,
        )  # fmt: skip
        identity = client.of_pki(deployed.pki_dir, "G2T1")
        async with identity.channel(server.address) as channel:
            terminal = pb_grpc.TerminalStub(channel)
            request = pb.GetOrderRequest(order_id="G2-NOSUCHORDER")
            codes = [(await status_of(terminal.GetOrder(request, timeout=5)))[0] for _ in range(5)]
        assert codes[:3] == [grpc.StatusCode.NOT_FOUND] * 3
        assert codes[3:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    finally:
        await stack.aclose()


async def test_a_payment_stream_whose_reader_stops_is_dropped(deployed: Deployed) -> None:
    for _ in range(3):
        await paid_order(deployed)  # events waiting for a new subscriber
    options = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
    identity = client.of_pki(deployed.pki_dir, "business")
    request = pb.WatchPaymentsRequest(subscriber_id="biz-slow")
    async with identity.channel(deployed.server.address, options) as channel:
        stalled = pb_grpc.BusinessGatewayStub(channel).WatchPayments(request)
        stall = deployed.config.access.limits.stream_stall_s
        await asyncio.sleep(stall + 2)  # reads nothing meanwhile
        code, details = await asyncio.wait_for(_drain(stalled), 30)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "took no message" in details
    gate = deployed.server.access.gate
    await eventually(lambda: _streams_of(gate, "business"), lambda n: n == 0)
    # the subscription is free again for a reader that reads
    again = deployed.business.WatchPayments(request)
    first = await asyncio.wait_for(again.read(), 10)
    again.cancel()
    assert first.event_id


async def _streams_of(gate: Any, name: str) -> int:
    return int(gate.in_flight(name)[1])
