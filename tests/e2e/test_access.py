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
from orchestrator.access.supervisors import REFUSAL
from orchestrator.access.tls import ServerTls
from orchestrator.bootstrap import start_front_door
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.store import keys
from tests.e2e.conftest import Deployed
from tests.support import bare_certificate, eventually


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
    store = deployed.store
    return len(await store.journal(order_id)), int(await store.redis.dbsize())


async def paid_order(deployed: Deployed, channel: Channel = Channel.WECHAT) -> pb.Order:
    return await paid_order_at(deployed, deployed.window(), channel)


async def paid_order_of(deployed: Deployed, business: str) -> pb.Order:
    """A paid order that `business` created: only its streams carry its events."""
    order = await deployed.stub_as(business, pb_grpc.BusinessGatewayStub).CreateOrder(
        pb.CreateOrderRequest(
            request_id=uuid.uuid4().hex, business_no=f"B-{uuid.uuid4().hex[:12]}",
            window_id=deployed.window(), payer_name="王五",
            lines=[pb.OrderLine(fee_code="PLT-AUTO", quantity=1)],
        ),
        timeout=10,
    )  # fmt: skip
    answer = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.WECHAT), timeout=30
    )
    assert answer.state == pb.PAID
    return answer


async def paid_order_at(
    deployed: Deployed, window: str, channel: Channel = Channel.WECHAT
) -> pb.Order:
    order = await deployed.create(window)
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


async def test_a_revoked_certificate_is_refused_without_a_restart(deployed: Deployed) -> None:
    order = await deployed.create(deployed.window())
    reader = deployed.stub_as("spare", pb_grpc.BusinessGatewayStub)
    request = pb.GetOrderRequest(order_id=order.order_id)
    assert (await reader.GetOrder(request, timeout=5)).order_id == order.order_id
    authority = pki.Authority(pki.PkiPaths(deployed.pki_dir))
    authority.revoke_client("spare")
    code, details = await eventually(  # same connection; the list's watcher sees it
        lambda: status_of(reader.GetOrder(request, timeout=5)),
        lambda answer: answer[0] != grpc.StatusCode.OK,
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details
    authority.issue_client("spare")  # a new certificate under the same name works
    async with client.of_pki(deployed.pki_dir, "spare").channel(deployed.server.address) as ch:
        fresh = pb_grpc.BusinessGatewayStub(ch)
        assert (await fresh.GetOrder(request, timeout=5)).order_id == order.order_id
    code, _ = await status_of(reader.GetOrder(request, timeout=5))  # the old one stays out
    assert code == grpc.StatusCode.UNAUTHENTICATED
    await deployed.forget("spare")


async def test_revocation_ends_open_streams_and_frees_the_subscription(
    deployed: Deployed,
) -> None:
    """A stolen business certificate kept WatchPayments open, and a stolen terminal its
    WatchWindow: revoking them ends both streams, and the business system, with its new
    certificate, takes its subscription at once (no "already connected")."""
    await paid_order_of(deployed, "business2")  # events waiting for the subscriber
    await deployed.create("G3W3")  # an open order for the window's stream
    authority = pki.Authority(pki.PkiPaths(deployed.pki_dir))
    address = deployed.server.address
    subscription = pb.WatchPaymentsRequest(subscriber_id="biz-revoked")
    stolen = client.of_pki(deployed.pki_dir, "business2")
    terminal = client.of_pki(deployed.pki_dir, "G3T3")
    try:
        async with (
            stolen.channel(address) as payments_channel,
            terminal.channel(address) as window_channel,
        ):
            payments = pb_grpc.BusinessGatewayStub(payments_channel).WatchPayments(subscription)
            window = pb_grpc.TerminalStub(window_channel).WatchWindow(
                pb.WatchWindowRequest(terminal_id="G3T3")
            )
            assert (await asyncio.wait_for(payments.read(), 10)).event_id
            assert (await asyncio.wait_for(window.read(), 10)).order_id
            authority.revoke_client("business2")
            authority.revoke_client("G3T3")
            ended = await asyncio.wait_for(
                asyncio.gather(_read_to_end(payments), _read_to_end(window)), 10
            )
    finally:
        authority.issue_client("business2")
        authority.issue_client("G3T3")
        await deployed.forget("business2")
        await deployed.forget("G3T3")
    assert [code for code, _ in ended] == [grpc.StatusCode.UNAUTHENTICATED] * 2
    assert all("revoked" in details for _, details in ended)
    gate = deployed.server.access.gate
    await eventually(lambda: _streams_of(gate, "business2"), lambda n: n == 0)
    renewed = deployed.stub_as("business2", pb_grpc.BusinessGatewayStub)
    again = renewed.WatchPayments(subscription)
    try:
        first = await asyncio.wait_for(again.read(), 10)  # before the lease could lapse
    finally:
        again.cancel()
    assert first.event_id


async def test_a_certificate_named_backoffice_gets_no_role_without_the_binding(
    deployed: Deployed, tmp_path: Path
) -> None:
    """TLS trusts a shared root's CAs; a role needs this deployment's CA and URI."""
    ours, theirs = pki.PkiPaths(deployed.pki_dir), pki.PkiPaths(tmp_path / "theirs")
    pki.init(theirs.root, ["backoffice"])  # another CA, even with the URI
    bundle = tmp_path / "trusted.crt"
    bundle.write_bytes(ours.ca_cert.read_bytes() + theirs.ca_cert.read_bytes())
    tls = ServerTls(bundle, ours.server_cert, ours.server_key, ours.crl, ours.ca_cert)
    unbound_cert, unbound_key = bare_certificate(pki.Authority(ours), "backoffice", [])
    ca = ours.ca_cert.read_bytes()
    callers = {
        "another CA": client.Identity(
            "backoffice", ca, theirs.client_cert("backoffice").read_bytes(),
            theirs.client_key("backoffice").read_bytes(),
        ),
        "our CA, no binding": client.Identity("backoffice", ca, unbound_cert, unbound_key),
        "ours": client.of_pki(deployed.pki_dir, "backoffice"),
    }  # fmt: skip
    request = pb.SettlementRequest(date="2026-11-29")
    stack = AsyncExitStack()
    answers = {}
    try:
        server = await start_front_door(
            deployed.config, deployed.redis_url, dict(deployed.actors.submitters), stack,
            tls, deployed.pki_dir,
        )  # fmt: skip
        for what, identity in callers.items():
            async with identity.channel(server.address) as channel:
                call = pb_grpc.BackOfficeStub(channel).GetSettlement(request, timeout=10)
                answers[what] = await status_of(call)
    finally:
        await stack.aclose()
    assert answers["ours"] == (grpc.StatusCode.OK, "")
    for what in ("another CA", "our CA, no binding"):
        code, details = answers[what]
        assert code == grpc.StatusCode.UNAUTHENTICATED, what
        assert "not one of this deployment" in details, what


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
    keys_before = await deployed.store.redis.dbsize()
    code, details = await status_of(
        getattr(deployed.stub_as(principal, stub), method)(request_message, timeout=10)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert principal in details and method in details
    assert denied(role, method) == before + 1
    assert await deployed.store.redis.dbsize() == keys_before


async def test_an_unregistered_subscriber_is_denied(deployed: Deployed) -> None:
    stream = deployed.business.WatchPayments(pb.WatchPaymentsRequest(subscriber_id="curious"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "curious" in (info.value.details() or "")


async def test_a_business_system_cannot_read_ack_or_hold_anothers_events(
    deployed: Deployed,
) -> None:
    await paid_order(deployed)
    await paid_order_of(deployed, "business2")
    one = deployed.business
    two = deployed.stub_as("business2", pb_grpc.BusinessGatewayStub)
    for stub, theirs in ((two, "business"), (one, "biz-two")):
        code, details = await _drain(
            stub.WatchPayments(pb.WatchPaymentsRequest(subscriber_id=theirs), timeout=10)
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED and theirs in details
        ack = pb.AckPaymentsRequest(subscriber_id=theirs, event_ids=["G1-1-0"])
        code, details = await status_of(stub.AckPayments(ack, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED and theirs in details
    assert not await deployed.store.redis.exists(keys.lease("biz-two"))  # not held
    own = two.WatchPayments(pb.WatchPaymentsRequest(subscriber_id="biz-two"))
    try:
        assert (await asyncio.wait_for(own.read(), 10)).event_id  # its own: at once
    finally:
        own.cancel()


async def test_the_auditor_reads_payer_names_masked(deployed: Deployed) -> None:
    order = await paid_order(deployed)
    assert order.payer_name == "王五"
    by_id = pb.GetOrderRequest(order_id=order.order_id)
    auditor = deployed.stub_as("auditor", pb_grpc.TerminalStub)
    assert (await auditor.GetOrder(by_id, timeout=10)).payer_name == "王*"
    by_case = pb.GetOrderRequest(business_no=order.business_no)
    masked = await deployed.stub_as("auditor", pb_grpc.BusinessGatewayStub).GetOrder(by_case)
    assert masked.payer_name == "王*"
    assert (await deployed.get(order.order_id)).payer_name == "王五"  # the back office
    receipt = pb.GetReceiptRequest(order_id=order.order_id, render_html=True)
    readers = {
        name: deployed.stub_as(name, pb_grpc.ReceiptsStub) for name in ("auditor", "backoffice")
    }
    seen = await eventually(
        lambda: status_of(readers["backoffice"].GetReceipt(receipt, timeout=10)),
        lambda answer: answer[0] == grpc.StatusCode.OK,
    )
    assert seen[0] == grpc.StatusCode.OK
    audited = await readers["auditor"].GetReceipt(receipt, timeout=10)
    assert audited.payer_name == "王*" and "王五" not in audited.html.decode()
    full = await readers["backoffice"].GetReceipt(receipt, timeout=10)
    assert full.payer_name == "王五" and "王五" in full.html.decode()


async def test_a_terminal_reads_only_orders_of_its_own_service_point(deployed: Deployed) -> None:
    order = await deployed.create("G2W1", business_no=f"B-{uuid.uuid4().hex[:10]}")
    mine = deployed.terminal_for("G2T3")
    assert (await mine.GetOrder(pb.GetOrderRequest(order_id=order.order_id))).order_id
    theirs = deployed.terminal_for("G1T1")
    by_id = pb.GetOrderRequest(order_id=order.order_id)  # its own words: refused
    code, details = await status_of(theirs.GetOrder(by_id, timeout=5))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "G1T1" in details
    # Checked on the answer: told nothing was found, neither the order id nor that the
    # case exists at another point.
    by_case = pb.GetOrderRequest(business_no=order.business_no)
    code, details = await status_of(theirs.GetOrder(by_case, timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == f"no order for business case {order.business_no} not found"


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


async def forget_pin_attempts(
    deployed: Deployed, terminals: list[str], supervisors: list[str]
) -> None:
    """The counts a test left: other tests refund at these terminals."""
    await deployed.store.redis.delete(
        *(keys.pin_terminal(t) for t in terminals),
        *(key for s in supervisors for key in (keys.pin_failures(s), keys.pin_lock(s))),
    )


async def test_a_wrong_pin_reserves_nothing_and_five_lock_the_supervisor(
    deployed: Deployed,
) -> None:
    order = await paid_order_at(deployed, "G1W2")
    pin = deployed.pins["G1L"]
    wrong = "999999" if pin != "999999" else "888888"

    def refund(with_pin: str, terminal: str) -> pb.RefundRequest:
        request = deployed.refund_request(order, 100)
        request.supervisor_id, request.supervisor_pin = "G1L", with_pin
        request.terminal_id = terminal
        return request

    async def answer(stub: pb_grpc.TerminalStub, with_pin: str, terminal: str) -> Any:
        return await status_of(stub.Refund(refund(with_pin, terminal), timeout=10))

    journal = (await journal_and_keys(deployed, order.order_id))[0]
    stack = AsyncExitStack()
    try:
        # one terminal has 3 attempts: it alone cannot lock; a second one's 2 more do
        answers = [
            await answer(deployed.terminal_for(t), wrong, t)
            for t in ("G1T2", "G1T2", "G1T2", "G1T3", "G1T3")
        ]
        assert answers == [(grpc.StatusCode.PERMISSION_DENIED, REFUSAL)] * 5
        assert await deployed.store.redis.exists(keys.pin_lock("G1L"))
        right = await answer(deployed.terminal_for("G1T4"), pin, "G1T4")
        assert right == (grpc.StatusCode.PERMISSION_DENIED, REFUSAL)  # right, but locked
        after = await deployed.get(order.order_id)
        assert after.refunded_fen == 0 and not after.refunds
        assert (await journal_and_keys(deployed, order.order_id))[0] == journal
        # the count and the lock live in Redis, where every front door sees them
        other = await start_front_door(
            deployed.config, deployed.redis_url, dict(deployed.actors.submitters), stack,
            ServerTls.of_pki(deployed.pki_dir), deployed.pki_dir,
        )  # fmt: skip
        async with client.of_pki(deployed.pki_dir, "G1T4").channel(other.address) as channel:
            elsewhere = await answer(pb_grpc.TerminalStub(channel), pin, "G1T4")
        assert elsewhere == (grpc.StatusCode.PERMISSION_DENIED, REFUSAL)
    finally:
        await stack.aclose()
        await forget_pin_attempts(deployed, ["G1T2", "G1T3", "G1T4"], ["G1L"])


async def test_every_refusal_of_a_supervisor_answers_the_same(deployed: Deployed) -> None:
    order = await paid_order_at(deployed, "G2W2")
    terminal = deployed.terminal_of_order(order)
    pin = deployed.pins["G2S"]
    refusals = []
    for supervisor, with_pin in (
        ("NOBODY", pin),  # no such supervisor
        ("G1S", deployed.pins["G1S"]),  # the right PIN of another point's supervisor
        ("G2S", "999999" if pin != "999999" else "888888"),  # a wrong PIN
    ):
        request = deployed.refund_request(order, 100)
        request.supervisor_id, request.supervisor_pin = supervisor, with_pin
        refusals.append(await status_of(terminal.Refund(request, timeout=10)))
    await forget_pin_attempts(deployed, [request.terminal_id], ["G2S"])
    assert refusals == [(grpc.StatusCode.PERMISSION_DENIED, REFUSAL)] * 3
    assert (await deployed.get(order.order_id)).refunded_fen == 0
    refunded = await terminal.Refund(deployed.refund_request(order, 100), timeout=30)
    assert refunded.refunded_fen == 100


async def test_no_pin_is_counted_for_an_order_out_of_reach(deployed: Deployed) -> None:
    """A terminal names an order of another point, or none at all: refused before the
    PIN, so it can neither guess nor lock a supervisor with it."""
    theirs = await paid_order_at(deployed, "G2W3")
    stranger = deployed.terminal_for("G1T5")
    redis = deployed.store.redis
    for n in range(6):
        request = deployed.refund_request(theirs, 100)
        request.terminal_id, request.supervisor_pin = "G1T5", f"{n:06d}"
        code, details = await status_of(stranger.Refund(request, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "service point G1" in details
    for n in range(6):
        request = deployed.refund_request(theirs, 100)
        request.terminal_id, request.order_id = "G1T5", f"G1-NOSUCH{n}"
        request.supervisor_id, request.supervisor_pin = "G1S", f"{n:06d}"
        code, _ = await status_of(stranger.Refund(request, timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND
    assert not await redis.exists(keys.pin_terminal("G1T5"))
    assert not await redis.exists(keys.pin_lock("G2S"))
    assert not await redis.exists(keys.pin_lock("G1S"))


async def test_the_journal_records_supervisor_terminal_and_amount_never_the_pin(
    deployed: Deployed,
) -> None:
    order = await paid_order(deployed, Channel.CASH)
    request = deployed.refund_request(order, 300)
    refunded = await deployed.terminal_of_order(order).Refund(request, timeout=30)
    assert refunded.refunded_fen == 300
    assert request.supervisor_pin not in str(refunded)
    store = deployed.store
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


async def _read_to_end(call: Any) -> tuple[grpc.StatusCode, str]:
    """Read (with read(), for a call already read that way) until the stream ends."""
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def _drain(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


# ---- input hardening -------------------------------------------------------------------


async def test_ids_and_codes_are_matched_whole_and_in_ascii(deployed: Deployed) -> None:
    keys_before = await deployed.store.redis.dbsize()
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex, business_no="B1\n", window_id="G1W1", payer_name="王五",
        lines=[pb.OrderLine(fee_code="PLT-AUTO", quantity=1)],
    )  # fmt: skip
    code, details = await status_of(deployed.business.CreateOrder(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "business_no" in details
    request.business_no, request.payer_name = "B1", "王五\u202e"
    code, details = await status_of(deployed.business.CreateOrder(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "payer_name" in details
    assert await deployed.store.redis.dbsize() == keys_before
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
    subscriber = "business"
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
        gate = deployed.server.access.gate
        # Reads nothing until the front door has taken the stream and let it go.
        await eventually(lambda: _streams_of(gate, "business"), lambda n: n == 1)
        await eventually(lambda: _streams_of(gate, "business"), lambda n: n == 0, within=stall + 30)
        code, details = await asyncio.wait_for(_drain(stalled), 30)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "took no message" in details
    # the subscription is free again for a reader that reads
    again = deployed.business.WatchPayments(request)
    first = await asyncio.wait_for(again.read(), 10)
    again.cancel()
    assert first.event_id


async def _streams_of(gate: Any, name: str) -> int:
    return int(gate.in_flight(name)[1])
