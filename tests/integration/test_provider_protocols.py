"""The real protocol adapters against the sandbox gateways over real HTTP on loopback:
every channel x every sandbox behaviour through the shared engine, refunds, bills, and
signatures that do not verify."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.config import Config
from orchestrator.domain.states import AttemptState, Channel
from orchestrator.providers.alipay import Alipay
from orchestrator.providers.engine import AttemptDriver, SystemClock, Ticket
from orchestrator.providers.factory import (
    Providers,
    build_providers,
    wechat_merchant,
    wechat_trust,
)
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.keys import ensure_dev_keys
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    TradeStatus,
)
from orchestrator.providers.signing import generate_key
from orchestrator.providers.wechat import WeChatPay
from orchestrator.sandbox.host import Sandboxes, start_sandboxes
from tests.support import EXPECTED, PROVIDER_CHANNELS, Recorded, code, new_id, small_config

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


@dataclass
class World:
    config: Config
    keys_dir: Path
    sandboxes: Sandboxes
    providers: Providers


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    keys_dir = tmp_path_factory.mktemp("keys")
    ensure_dev_keys(keys_dir)
    config = small_config(time_scale=0.02)
    sandboxes = await start_sandboxes(config, keys_dir)
    config = config.with_base_urls(sandboxes.base_urls)
    providers = build_providers(config, keys_dir)
    yield World(config, keys_dir, sandboxes, providers)
    await providers.close()
    await sandboxes.stop()


def call(attempt_id: str, channel: Channel, ending: str = "0000", amount: int = 8000) -> PayCall:
    return PayCall(attempt_id, code(channel, ending), amount, "SP01", "T01", "科目一")


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
@pytest.mark.parametrize("ending", sorted(EXPECTED))
async def test_every_behaviour_over_http(world: World, channel: Channel, ending: str) -> None:
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(channel)
    attempt_id = f"{attempt_id}-{new_id('')[2:10]}"  # unique in the module's ledger
    recorded.order.attempts[-1].attempt_id = attempt_id
    driver = AttemptDriver(
        world.providers[channel], world.config.playbook(channel), clock, recorded
    )
    ticket = Ticket(
        attempt_id, AttemptState.SUBMITTED, clock.now_ms(), call(attempt_id, channel, ending)
    )
    await asyncio.wait_for(driver.run(ticket), timeout=30)
    order_state, attempt_state = EXPECTED[ending][channel]
    attempt = recorded.order.attempts[-1]
    assert (recorded.order.state, attempt.state) == (order_state, attempt_state), recorded.events
    trade = world.sandboxes.bank(channel).trade(attempt_id)
    if attempt_state is AttemptState.SUCCEEDED:
        assert trade is not None and trade.state.value == "SUCCESS"
        assert attempt.provider_trade_no == trade.trade_no
    elif attempt_state is AttemptState.REVERSED:
        assert trade is not None and trade.state.value in ("CLOSED", "REVOKED")
    else:
        assert trade is None or trade.state.value == "PAYERROR"


async def paid(world: World, channel: Channel, amount: int = 8000) -> str:
    out_trade_no = new_id("P")
    answer = await world.providers[channel].pay(call(out_trade_no, channel, amount=amount))
    assert answer.status is TradeStatus.PAID
    return out_trade_no


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_refunds_partial_then_full_never_more(world: World, channel: Channel) -> None:
    provider = world.providers[channel]
    out_trade_no = await paid(world, channel)
    first = await provider.refund(out_trade_no, new_id("R"), 3000, 8000)
    assert first.done
    again = await provider.refund(out_trade_no, new_id("R"), 5000, 8000)
    assert again.done
    refused = await provider.refund(out_trade_no, new_id("R"), 1, 8000)
    assert not refused.done
    trade = world.sandboxes.bank(channel).trade(out_trade_no)
    assert trade is not None and trade.refunded_fen == 8000


async def test_a_whole_unionpay_sale_is_voided_the_same_day(world: World) -> None:
    out_trade_no = await paid(world, Channel.UNIONPAY)
    answer = await world.providers[Channel.UNIONPAY].refund(out_trade_no, new_id("R"), 8000, 8000)
    assert answer.done and answer.reason == "voided"
    trade = world.sandboxes.bank(Channel.UNIONPAY).trade(out_trade_no)
    assert trade is not None and [r.kind for r in trade.refunds] == ["void"]


async def test_a_resent_refund_number_refunds_once(world: World) -> None:
    out_trade_no = await paid(world, Channel.WECHAT)
    refund_no = new_id("R")
    for _ in range(3):
        assert (
            await world.providers[Channel.WECHAT].refund(out_trade_no, refund_no, 100, 8000)
        ).done
    trade = world.sandboxes.bank(Channel.WECHAT).trade(out_trade_no)
    assert trade is not None and trade.refunded_fen == 100


async def test_alipay_precreate_gives_a_qr_code(world: World) -> None:
    provider = world.providers[Channel.ALIPAY].inner  # type: ignore[attr-defined]
    assert isinstance(provider, Alipay)
    assert (await provider.precreate(new_id("Q"), 8000, "科目一")).startswith(
        "https://qr.alipay.com/"
    )


async def test_bills_come_in_each_providers_format(world: World) -> None:
    for channel in PROVIDER_CHANNELS:
        out_trade_no = await paid(world, channel, amount=12345)
        await world.providers[channel].refund(out_trade_no, new_id("R"), 345, 12345)
    wechat = await world.providers[Channel.WECHAT].bill(TODAY)  # type: ignore[attr-defined]
    lines = wechat.decode().split("\r\n")
    assert lines[0].startswith("交易时间,公众账号ID") and lines[-1] == ""
    assert all(field.startswith("`") for field in lines[1].split(","))
    assert lines[-3].startswith("总交易单数") and "`123.45" in wechat.decode()
    alipay = await world.providers[Channel.ALIPAY].bill(TODAY)  # type: ignore[attr-defined]
    with zipfile.ZipFile(io.BytesIO(alipay)) as archive:
        [name] = archive.namelist()
        text = archive.read(name).decode("gbk")
    assert name.endswith("_业务明细.csv")
    assert text.startswith("#支付宝业务明细查询") and "#交易合计：" in text and ",-3.45," in text
    unionpay = (await world.providers[Channel.UNIONPAY].bill(TODAY)).decode()  # type: ignore[attr-defined]
    assert unionpay.startswith("H|898000000000001|") and "\nT|" in unionpay
    assert "|12345|" in unionpay


async def test_the_gateway_refuses_a_request_signed_with_another_key(world: World) -> None:
    good = wechat_merchant(world.keys_dir)
    stranger = generate_key()
    forged = replace(good, private=stranger)  # claims our serial, signs with another key
    settings = world.config.providers[Channel.WECHAT]
    client = HttpClient(settings.base_url)
    trust = wechat_trust(world.keys_dir, settings.credentials)
    provider = WeChatPay(client, good, settings.merchant_id, settings.app_id, trust)
    try:
        await provider.query(new_id("W"))  # learns the platform certificates
        provider._keys = forged
        with pytest.raises(ProviderRejected, match="SIGN_ERROR"):
            await provider.pay(call(new_id("F"), Channel.WECHAT))
    finally:
        await client.close()


class Tampering(HttpClient):
    """Passes requests on, then alters the answer's body on its way back."""

    async def request(self, method: str, target: str, **kwargs: object) -> HttpAnswer:  # type: ignore[override]
        answer = await super().request(method, target, **kwargs)  # type: ignore[arg-type]
        if target == "/v3/certificates":
            return answer  # the trust material itself comes through intact
        body = answer.body.replace(b"8000", b"9000").replace(b"80.00", b"90.00")
        assert body != answer.body
        return HttpAnswer(answer.status, answer.headers, body)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_a_tampered_answer_is_treated_as_unknown(world: World, channel: Channel) -> None:
    providers = build_providers(world.config, world.keys_dir)
    tampering = providers[channel].inner  # type: ignore[attr-defined]
    client = Tampering(world.config.providers[channel].base_url)
    tampering._http = client  # type: ignore[attr-defined]
    try:
        with pytest.raises(OutcomeUnknown, match="signature"):
            await tampering.pay(call(new_id("T"), channel))
    finally:
        await client.close()
        await providers.close()
