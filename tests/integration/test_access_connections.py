"""The front door's access interceptor over real mutual TLS on loopback, with a stub
Terminal servicer (no Ray, no Redis): what a client certificate resolves to is
remembered per certificate, never per connection, address or name; a certificate
revoked while its connection is open is refused from the first call after the list in
force names it (the watcher takes a new list within WATCH_S, docs/SECURITY.md; the tests
wait for the list, not for a time); and the limits stay per principal, shared by all its
connections and certificates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc

from orchestrator.access import client, pki
from orchestrator.access.interceptor import not_found_text
from orchestrator.access.revocation import WATCH_S
from orchestrator.access.setup import FrontDoorAccess, directory, front_door_access
from orchestrator.access.tls import ServerTls
from orchestrator.config import parse_config
from orchestrator.domain.principals import Limits
from orchestrator.frontdoor.telemetry import MetricsInterceptor
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from tests.support import eventually, small_config, small_config_data, two_offices

OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # no connection shared by channels


class Stub(pb_grpc.TerminalServicer):
    """Pay answers at once (or once `release` is set, when there is one), and notes
    which connection (peer address) each call came on."""

    def __init__(self) -> None:
        self.peers: list[str] = []
        self.release: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def Pay(self, request: pb.PayRequest, context: Any) -> pb.Order:
        self.peers.append(context.peer())
        if self.release is not None:
            self.entered.set()
            await self.release.wait()
        return pb.Order(order_id="E1-STUB", state=pb.PAID)


@asynccontextmanager
async def front_door(
    root: Path, limits: Limits | None = None
) -> AsyncIterator[tuple[str, FrontDoorAccess, Stub]]:
    """The front door's access layer as bootstrap wires it, its list watched."""
    config = small_config()
    if limits is not None:
        config = replace(config, access=replace(config.access, limits=limits))
    pki.init(root, directory(config).names())
    access = front_door_access(config, ServerTls.of_pki(root))
    server = grpc.aio.server(interceptors=[MetricsInterceptor(), access.interceptor])
    stub = Stub()
    pb_grpc.add_TerminalServicer_to_server(stub, server)
    port = server.add_secure_port("127.0.0.1:0", access.tls.credentials())
    await server.start()
    watcher = asyncio.create_task(access.watch_revocations())
    try:
        yield f"127.0.0.1:{port}", access, stub
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await server.stop(None)


async def pay(channel: grpc.aio.Channel, terminal: str = "E1T1") -> tuple[grpc.StatusCode, str]:
    try:
        await pb_grpc.TerminalStub(channel).Pay(pb.PayRequest(terminal_id=terminal), timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def set_aside(root: Path, name: str, suffix: str) -> client.Identity:
    """The principal's certificate and key, moved aside so that another can be issued
    under the same name (a rotation: both stay valid)."""
    paths = pki.PkiPaths(root)
    identity = client.of_pki(root, name)
    for path in (paths.client_cert(name), paths.client_key(name)):
        path.rename(path.with_name(f"{path.stem}-{suffix}{path.suffix}"))
    return identity


async def in_force(access: FrontDoorAccess, revoked: int) -> None:
    """Until the list the front door holds names `revoked` certificates (the watcher
    looks every WATCH_S)."""
    await eventually(
        lambda: asyncio.sleep(0, len(access.revocations.serials)),
        lambda n: n == revoked,
        within=max(10.0, 20 * WATCH_S),
    )


async def test_a_certificate_revoked_on_an_open_connection_is_refused_after_the_delay(
    tmp_path: Path,
) -> None:
    """Fails when the interceptor remembers whether a certificate is revoked with the
    rest of what it resolves to."""
    async with (
        front_door(tmp_path) as (address, access, stub),
        client.of_pki(tmp_path, "E1T1").channel(address) as revoked,
        client.of_pki(tmp_path, "E1T2").channel(address) as other,
    ):
        assert await pay(revoked) == (grpc.StatusCode.OK, "")
        assert await pay(revoked) == (grpc.StatusCode.OK, "")  # remembered
        assert await pay(other, "E1T2") == (grpc.StatusCode.OK, "")
        pki.Authority(pki.PkiPaths(tmp_path)).revoke_client("E1T1")
        await in_force(access, 1)
        assert await pay(revoked) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "the certificate of E1T1 is revoked",
        )
        assert await pay(other, "E1T2") == (grpc.StatusCode.OK, "")
        assert len(set(stub.peers[:2])) == 1  # the revoked one's calls: one connection


async def test_a_new_certificate_under_a_revoked_name_is_remembered_apart(
    tmp_path: Path,
) -> None:
    """Fails when what a certificate resolves to is keyed by its name (or the peer's
    address): the new certificate would inherit the revoked serial, or the revoked one
    the new serial."""
    async with front_door(tmp_path) as (address, access, _):
        old = client.of_pki(tmp_path, "E1T1")
        async with old.channel(address, OWN_CONNECTION) as first:
            assert await pay(first) == (grpc.StatusCode.OK, "")
            authority = pki.Authority(pki.PkiPaths(tmp_path))
            authority.revoke_client("E1T1")
            authority.issue_client("E1T1")
            await in_force(access, 1)
            async with client.of_pki(tmp_path, "E1T1").channel(address, OWN_CONNECTION) as new:
                assert await pay(new) == (grpc.StatusCode.OK, "")
                assert (await pay(first))[0] == grpc.StatusCode.UNAUTHENTICATED
                async with old.channel(address, OWN_CONNECTION) as again:
                    assert (await pay(again))[0] == grpc.StatusCode.UNAUTHENTICATED
                assert await pay(new) == (grpc.StatusCode.OK, "")
        assert len(access.interceptor.callers) == 2


async def test_a_principals_connections_and_certificates_share_its_bucket(
    tmp_path: Path,
) -> None:
    """Fails when a principal's account of limits is kept per certificate or connection."""
    limits = Limits(terminal_rate=0.001, terminal_burst=4)
    async with front_door(tmp_path, limits) as (address, access, stub):
        one = set_aside(tmp_path, "E1T1", "one")
        pki.Authority(pki.PkiPaths(tmp_path)).issue_client("E1T1")
        two = client.of_pki(tmp_path, "E1T1")
        assert one.cert != two.cert
        async with (
            one.channel(address, OWN_CONNECTION) as first,
            two.channel(address, OWN_CONNECTION) as second,
        ):
            for channel in (first, second, first, second):
                assert await pay(channel) == (grpc.StatusCode.OK, "")
            over = (grpc.StatusCode.RESOURCE_EXHAUSTED, "E1T1 is over 0.001 calls/s (burst 4)")
            assert await pay(first) == over
            assert await pay(second) == over
        assert len(set(stub.peers)) == 2  # two connections
        assert len(access.interceptor.callers) == 2
        assert access.gate.in_flight("E1T1") == (0, 0)


async def test_calls_in_flight_are_counted_per_principal_across_connections(
    tmp_path: Path,
) -> None:
    """A terminal's calls in flight on two connections count in one bound."""
    async with front_door(tmp_path, Limits(terminal_calls=1)) as (address, access, stub):
        stub.release = asyncio.Event()
        identity = client.of_pki(tmp_path, "E1T1")
        async with (
            identity.channel(address, OWN_CONNECTION) as first,
            identity.channel(address, OWN_CONNECTION) as second,
        ):
            waiting = asyncio.create_task(pay(first))
            await asyncio.wait_for(stub.entered.wait(), 5)
            assert await pay(second) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "E1T1: more than 1 calls in flight",
            )
            stub.release.set()
            assert await waiting == (grpc.StatusCode.OK, "")
        assert access.gate.in_flight("E1T1") == (0, 0)


class Orders(pb_grpc.BusinessGatewayServicer):
    """GetOrder by order id: E1's orders are office EA's, the others EB's; an id that
    ends in 'NONE' is not found, in the servicer's words."""

    async def GetOrder(self, request: pb.GetOrderRequest, context: Any) -> pb.Order:
        if request.order_id.endswith("NONE"):
            await context.abort(grpc.StatusCode.NOT_FOUND, not_found_text(request))
        office = "EA" if request.order_id.startswith("E1-") else "EB"
        return pb.Order(order_id=request.order_id, office_id=office, amount_fen=11000)


async def get_order(channel: grpc.aio.Channel, order_id: str) -> tuple[grpc.StatusCode, str]:
    try:
        request = pb.GetOrderRequest(order_id=order_id)
        answer = await pb_grpc.BusinessGatewayStub(channel).GetOrder(request, timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, answer.office_id


async def test_an_offices_backoffice_principal_reads_its_office_and_finds_nothing_else(
    tmp_path: Path,
) -> None:
    """Over mTLS with the PKI the directory's names get: backoffice-a ([access.offices]
    places it in EA) reads EA's order; EB's is answered exactly as an order that does
    not exist. The deployment-wide backoffice reads both."""
    data = two_offices(small_config_data())
    data["access"]["principals"]["backoffice-a"] = "backoffice"
    data["access"]["offices"] = {"backoffice-a": "EA"}
    config = parse_config(data, "test")
    pki.init(tmp_path, directory(config).names())
    access = front_door_access(config, ServerTls.of_pki(tmp_path))
    server = grpc.aio.server(interceptors=[access.interceptor])
    pb_grpc.add_BusinessGatewayServicer_to_server(Orders(), server)
    port = server.add_secure_port("127.0.0.1:0", access.tls.credentials())
    await server.start()
    address = f"127.0.0.1:{port}"
    try:
        async with (
            client.of_pki(tmp_path, "backoffice-a").channel(address) as office_a,
            client.of_pki(tmp_path, "backoffice").channel(address) as province,
        ):
            assert await get_order(office_a, "E1-AAA1") == (grpc.StatusCode.OK, "EA")
            hidden = await get_order(office_a, "E2-BBB1")
            missing = await get_order(office_a, "E2-NONE")
            assert hidden == (grpc.StatusCode.NOT_FOUND, "order E2-BBB1 not found")
            assert missing == (grpc.StatusCode.NOT_FOUND, "order E2-NONE not found")
            assert await get_order(province, "E1-AAA1") == (grpc.StatusCode.OK, "EA")
            assert await get_order(province, "E2-BBB1") == (grpc.StatusCode.OK, "EB")
    finally:
        await server.stop(None)
