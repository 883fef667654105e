"""The counterpart's key material (its own CA, as UnionPay's: a root, an intermediate and a
signing certificate whose CN names its holder), the counterpart gateway on loopback, and
windowpay's UnionPay adapter pointed at it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web

from orchestrator.channels.unionpay.access import DIRECT, Access
from orchestrator.channels.unionpay.adapter import UnionPay
from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.providers.certificates import (
    Certificate,
    SigningIdentity,
    certificate_pem,
    issue,
)
from orchestrator.providers.http import HttpClient
from orchestrator.providers.signing import generate_key
from tests.conformance.unionpay.acp import AcpGateway, Signer

MER_ID = "777290058110097"
TEST_SIGNER = "00040000:SIGN"  # the holder name of the test environment's signer


@dataclass(frozen=True)
class Authority:
    root: Certificate
    middle: Certificate
    middle_key: object

    def identity(self, common_name: str, *, ca: bool = False) -> SigningIdentity:
        key = generate_key()
        issuer = (self.middle, self.middle_key)
        return SigningIdentity(key, issue(common_name, key, issuer, ca=ca))  # type: ignore[arg-type]


@pytest.fixture(scope="package")
def authority() -> Authority:
    root_key, middle_key = generate_key(), generate_key()
    root = issue("ACP counterpart root", root_key, None, ca=True)
    middle = issue("ACP counterpart OCA1", middle_key, (root, root_key), ca=True)
    return Authority(root, middle, middle_key)


@pytest.fixture(scope="package")
def merchant(authority: Authority) -> SigningIdentity:
    return authority.identity(f"041@Z12@{MER_ID}:SIGN@00000001")


@pytest.fixture(scope="package")
def signer(authority: Authority) -> Signer:
    identity = authority.identity(f"041@Z12@{TEST_SIGNER}@00000062")
    return Signer(identity.key, certificate_pem(identity.certificate).decode())


@dataclass
class Running:
    gateway: AcpGateway
    base_url: str


@pytest.fixture
async def counterpart(signer: Signer, merchant: SigningIdentity) -> AsyncIterator[Running]:
    gateway = AcpGateway(signer, certificate_pem(merchant.certificate))
    runner = web.AppRunner(gateway.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Running(gateway, f"http://127.0.0.1:{port}")
    await runner.cleanup()


AdapterFactory = Callable[..., UnionPay]


@pytest.fixture
async def adapter_for(
    authority: Authority, merchant: SigningIdentity
) -> AsyncIterator[AdapterFactory]:
    clients: list[HttpClient] = []

    def make(
        base_url: str,
        *,
        clock: Callable[[], float] = time.time,
        signer_name: str = TEST_SIGNER,
        root: Certificate | None = None,
        middle: Certificate | None = None,
        mer_id: str = MER_ID,
        access: Access = DIRECT,
    ) -> UnionPay:
        client = HttpClient(base_url)
        clients.append(client)
        keys = UnionPayKeys(
            merchant, root or authority.root, middle or authority.middle, signer_name
        )
        back_url = "https://windowpay.example/notify/unionpay"
        return UnionPay(client, keys, mer_id, back_url, clock, access)

    yield make
    for client in clients:
        await client.close()
