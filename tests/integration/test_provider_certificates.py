"""Certificates over real HTTP against the sandbox gateways: WeChat's serial_no and
platform certificates (rotation, two at once, an unknown serial, public-key mode),
UnionPay's certId and signPubKeyCert chain, and a live channel's keys left untouched."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest

from orchestrator.channels.factory import Providers, build_providers
from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.adapter import UnionPay
from orchestrator.channels.unionpay.sandbox import UnionPayGateway
from orchestrator.channels.unionpay.sandbox_keys import UnionPayPlatformKeys
from orchestrator.channels.unionpay.wiring import unionpay_keys
from orchestrator.channels.wechat import files as wechat_files
from orchestrator.channels.wechat.adapter import WeChatPay
from orchestrator.channels.wechat.platform import REFRESH_COOLDOWN_S, WeChatTrust
from orchestrator.channels.wechat.sandbox import WeChatGateway
from orchestrator.channels.wechat.sandbox_keys import WeChatPlatformKeys
from orchestrator.channels.wechat.wiring import wechat_merchant, wechat_trust
from orchestrator.config import Config
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel
from orchestrator.providers.engine import AttemptDriver, SystemClock, Ticket
from orchestrator.providers.http import HttpClient
from orchestrator.providers.keys import ensure_receipt_secret
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.signing import load_public_key, serial_of
from tests.support import Recorded, code, eventually, small_config


@dataclass
class World:
    config: Config
    keys_dir: Path
    sandboxes: Sandboxes
    providers: Providers

    @property
    def wechat_gateway(self) -> WeChatGateway:
        gateway = self.sandboxes.gateways[Channel.WECHAT]
        assert isinstance(gateway, WeChatGateway)
        return gateway

    @property
    def wechat_platform(self) -> WeChatPlatformKeys:
        return self.wechat_gateway.keys

    @property
    def unionpay_platform(self) -> UnionPayPlatformKeys:
        gateway = self.sandboxes.gateways[Channel.UNIONPAY]
        assert isinstance(gateway, UnionPayGateway)
        return gateway.keys

    def wechat(
        self, client: HttpClient, trust: WeChatTrust | None = None, clock: Clock | None = None
    ) -> WeChatPay:
        """A WeChat adapter of its own, so that its certificate cache starts empty."""
        settings = self.config.providers[Channel.WECHAT]
        trust = trust or wechat_trust(self.keys_dir, settings.credentials)
        merchant = wechat_merchant(self.keys_dir)
        return WeChatPay(
            client, merchant, settings.merchant_id, settings.app_id, trust, clock or Clock()
        )


class Clock:
    """Real time, which a test can move forward (the platform certificates are downloaded
    at most once a minute)."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    keys_dir = tmp_path_factory.mktemp("keys")
    config = small_config(time_scale=0.02)
    sandboxes = await start_sandboxes(config, keys_dir)
    config = config.with_base_urls(sandboxes.base_urls)
    providers = build_providers(config, keys_dir)
    yield World(config, keys_dir, sandboxes, providers)
    await providers.close()
    await sandboxes.stop()


@pytest.fixture
def signer_restored(world: World) -> Iterator[None]:
    wechat, unionpay = world.wechat_platform, world.unionpay_platform
    listed, wechat_signer, unionpay_signer = list(wechat.listed), wechat.signer, unionpay.signer
    yield
    wechat.listed[:], wechat.signer, unionpay.signer = listed, wechat_signer, unionpay_signer


@pytest.fixture
async def client(world: World) -> AsyncIterator[HttpClient]:
    http = HttpClient(world.config.providers[Channel.WECHAT].base_url)
    yield http
    await http.close()


def trade_no() -> str:
    return "C" + uuid.uuid4().hex[:20]


def call(channel: Channel, out_trade_no: str) -> PayCall:
    at_ms = int(time.time() * 1000)
    return PayCall(out_trade_no, code(channel), 8000, "SP01", "T01", "科目一", at_ms)


def ledger_state(world: World, channel: Channel, out_trade_no: str) -> str | None:
    trade = world.sandboxes.bank(channel).trade(out_trade_no)
    return None if trade is None else trade.state.value


async def test_serial_no_is_the_merchant_certificates_serial(
    world: World, client: HttpClient
) -> None:
    provider = world.wechat(client)
    merchant = wechat_merchant(world.keys_dir)
    assert merchant.own_serial == world.wechat_platform.peer_serial
    assert merchant.own_serial != serial_of(merchant.private.public_key())
    assert (await provider.pay(call(Channel.WECHAT, trade_no()))).status is TradeStatus.PAID
    # the serial windowpay sent before certificates (a hash of the key) is refused now
    provider._keys = replace(merchant, own_serial=serial_of(merchant.private.public_key()))
    refused = trade_no()
    with pytest.raises(ProviderRejected, match="SIGN_ERROR"):
        await provider.pay(call(Channel.WECHAT, refused))
    assert ledger_state(world, Channel.WECHAT, refused) is None
    assert wechat_files.merchant_cert(world.keys_dir).exists()


@pytest.mark.usefixtures("signer_restored")
async def test_a_rotation_breaks_nothing_and_both_certificates_count(
    world: World, client: HttpClient
) -> None:
    clock = Clock()
    provider = world.wechat(client, clock=clock)
    old = world.wechat_platform.own_serial
    assert (await provider.pay(call(Channel.WECHAT, trade_no()))).status is TradeStatus.PAID
    assert provider.platform.serials == {old}
    async with aiohttp.ClientSession() as session:
        rotate = f"{world.wechat_gateway.base_url}/_sandbox/certificates/rotate"
        async with session.post(rotate) as response:
            new = (await response.json())["serial_no"]
    assert new != old and world.wechat_platform.own_serial == new
    clock.ahead_s = REFRESH_COOLDOWN_S  # a minute after the first download
    assert (await provider.pay(call(Channel.WECHAT, trade_no()))).status is TradeStatus.PAID
    assert provider.platform.serials == {old, new}
    world.wechat_platform.sign_with_listed(0)  # answers under the old one still verify
    answer = await provider.query(TradeRef(trade_no(), 8000, int(time.time() * 1000)))
    assert answer.status is TradeStatus.NOT_FOUND
    assert provider.platform.serials == {old, new}


@pytest.mark.usefixtures("signer_restored")
async def test_an_unknown_serial_is_an_unknown_outcome_never_a_success(
    world: World, client: HttpClient
) -> None:
    provider = world.wechat(client)
    await provider.query(TradeRef(trade_no(), 8000, int(time.time() * 1000)))  # certificates known
    stranger = world.wechat_platform.sign_with_unlisted()
    out_trade_no = trade_no()
    with pytest.raises(OutcomeUnknown, match=f"unknown platform key '{stranger}'"):
        await provider.pay(call(Channel.WECHAT, out_trade_no))
    assert stranger not in provider.platform.serials  # still unknown
    assert ledger_state(world, Channel.WECHAT, out_trade_no) == "SUCCESS"  # money was taken


@pytest.mark.usefixtures("signer_restored")
async def test_the_engine_resolves_an_unknown_serial_by_asking_again(world: World) -> None:
    """The pay answer is signed under a serial nobody lists; the engine does not take it
    as an answer and ends as the ledger says once answers verify again."""
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.WECHAT)
    out_trade_no = trade_no()
    recorded.order.attempts[-1].attempt_id = out_trade_no
    provider = world.providers[Channel.WECHAT]
    await provider.query(TradeRef(trade_no(), 8000, int(time.time() * 1000)))  # certificates
    world.wechat_platform.sign_with_unlisted()
    driver = AttemptDriver(provider, world.config.playbook(Channel.WECHAT), clock, recorded)
    pay = call(Channel.WECHAT, out_trade_no)
    ticket = Ticket(out_trade_no, AttemptState.SUBMITTED, pay.at_ms, pay, pay.amount_fen)
    run = asyncio.create_task(driver.run(ticket))
    await eventually(
        lambda: asyncio.sleep(0, ledger_state(world, Channel.WECHAT, out_trade_no)),
        lambda state: state == "SUCCESS",
    )
    await eventually(
        lambda: asyncio.sleep(0, list(recorded.events)),
        lambda events: AttemptEvent.NO_ANSWER in events,
    )
    assert AttemptEvent.PAID not in recorded.events
    world.wechat_platform.sign_with_listed()
    await asyncio.wait_for(run, timeout=30)
    attempt = recorded.order.attempts[-1]
    final = ledger_state(world, Channel.WECHAT, out_trade_no)
    assert (attempt.state, final) in (
        (AttemptState.SUCCEEDED, "SUCCESS"),
        (AttemptState.REVERSED, "REVOKED"),
        (AttemptState.REVERSED, "CLOSED"),
    ), (attempt_id, recorded.events)


@pytest.mark.usefixtures("signer_restored")
async def test_the_wechat_pay_public_key_mode(world: World, client: HttpClient) -> None:
    public_key_id = world.wechat_platform.sign_with_public_key()
    assert public_key_id.startswith("PUB_KEY_ID_")
    settings = world.config.providers[Channel.WECHAT]
    trust = replace(
        wechat_trust(world.keys_dir, settings.credentials),
        public_key_id=public_key_id,
        public_key=load_public_key(wechat_files.pub_key(world.keys_dir)),
    )
    provider = world.wechat(client, trust)
    assert (await provider.pay(call(Channel.WECHAT, trade_no()))).status is TradeStatus.PAID
    without = world.wechat(client)  # certificate mode only: this serial means nothing
    with pytest.raises(OutcomeUnknown, match="unknown platform key 'PUB_KEY_ID_"):
        await without.pay(call(Channel.WECHAT, trade_no()))


async def test_unionpay_sends_the_pfx_certificates_id(world: World) -> None:
    settings = world.config.providers[Channel.UNIONPAY]
    keys = unionpay_keys(world.keys_dir, settings.credentials)
    assert keys.own_serial == world.unionpay_platform.peer_serial
    assert keys.own_serial == str(keys.identity.certificate.serial_number)
    sale = call(Channel.UNIONPAY, trade_no())
    provider = world.providers[Channel.UNIONPAY]
    # ACP's 00 to a sale means accepted; the query, also signed, confirms it
    assert (await provider.pay(sale)).status is TradeStatus.CONFIRMING
    assert (await provider.query(sale.trade)).status is TradeStatus.PAID


@pytest.mark.usefixtures("signer_restored")
async def test_unionpay_answers_under_an_untrusted_certificate_are_unknown(world: World) -> None:
    world.unionpay_platform.sign_with_untrusted()
    settings = world.config.providers[Channel.UNIONPAY]
    http = HttpClient(settings.base_url)
    keys = unionpay_keys(world.keys_dir, settings.credentials)
    provider = UnionPay(http, keys, settings.merchant_id, world.config.notify_url(Channel.UNIONPAY))
    out_trade_no = trade_no()
    try:
        with pytest.raises(OutcomeUnknown, match="answer certificate not trusted"):
            await provider.pay(call(Channel.UNIONPAY, out_trade_no))
    finally:
        await http.close()
    assert ledger_state(world, Channel.UNIONPAY, out_trade_no) == "SUCCESS"


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        + oct(path.stat().st_mode)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def test_a_live_channels_keys_are_byte_identical_after_start(tmp_path: Path) -> None:
    """One channel live, the others on the sandbox: the live key directory is never
    touched, and no sandbox material is made for it."""
    live = tmp_path / "wechat"
    live.mkdir()
    (live / "apiclient_key.pem").write_bytes(b"-----the live merchant key-----\n")
    (live / "apiclient_cert.pem").write_bytes(b"-----the live certificate-----\n")
    (live / "apiv3_key").write_bytes(b"live-apiv3-key-32-characters-abc")
    alipay = tmp_path / "alipay"  # the old bug: half of a pair was "repaired"
    alipay.mkdir()
    (alipay / "merchant_private.pem").write_bytes(b"live alipay app key")
    (alipay / "platform_public.pem").write_bytes(b"live alipay public key")
    before = digests(tmp_path)
    config = small_config().with_base_urls(
        {Channel.WECHAT: "https://wechat.invalid", Channel.ALIPAY: "https://alipay.invalid"}
    )
    assert config.sandboxed() == [Channel.UNIONPAY]
    ensure_receipt_secret(tmp_path)  # what `windowpay serve` does first
    ensure_dev_keys(tmp_path, config.sandboxed())
    sandboxes = await start_sandboxes(config, tmp_path)
    try:
        assert set(sandboxes.base_urls) == {Channel.UNIONPAY}
    finally:
        await sandboxes.stop()
    after = digests(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    made = set(after) - set(before)
    assert not any(name.startswith(("wechat/", "alipay/", "sandbox/wechat")) for name in made)
    assert "unionpay/acp_sign.pfx" in made
