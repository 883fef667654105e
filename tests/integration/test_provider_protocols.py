"""The real protocol adapters against the sandbox gateways over real HTTP on loopback:
every channel x every sandbox behaviour through the shared engine, refunds, bills, and
signatures that do not verify."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from orchestrator.channels.factory import Providers, build_providers
from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.adapter import txn_time
from orchestrator.channels.wechat.adapter import WeChatPay
from orchestrator.channels.wechat.wiring import wechat_merchant, wechat_trust
from orchestrator.config import Config
from orchestrator.domain.states import AttemptState, Channel
from orchestrator.providers.engine import AttemptDriver, SystemClock, Ticket
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.port import (
    AnswerMismatch,
    OutcomeUnknown,
    PayCall,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.signing import generate_key
from tests.support import (
    EXPECTED,
    PROVIDER_CHANNELS,
    REFUND_EXPECTED,
    Recorded,
    code,
    provider_id,
    small_config,
)

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
    at_ms = int(time.time() * 1000)
    return PayCall(attempt_id, code(channel, ending), amount, "SP01", "T01", "科目一", at_ms)


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
@pytest.mark.parametrize("ending", sorted(EXPECTED))
async def test_every_behaviour_over_http(world: World, channel: Channel, ending: str) -> None:
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(channel)  # unique: its random part
    driver = AttemptDriver(
        world.providers[channel], world.config.playbook(channel), clock, recorded
    )
    ticket = Ticket(
        attempt_id, AttemptState.SUBMITTED, clock.now_ms(), call(attempt_id, channel, ending), 8000
    )
    await asyncio.wait_for(driver.run(ticket), timeout=30)
    order_state, attempt_state = EXPECTED[ending][channel]
    attempt = recorded.order.attempts[-1]
    assert (recorded.order.state, attempt.state) == (order_state, attempt_state), recorded.events
    trade = world.sandboxes.bank(channel).trade(attempt_id)
    if attempt_state is AttemptState.SUCCEEDED:
        assert trade is not None and trade.state.value == "SUCCESS"
        assert attempt.provider_trade_no == trade.trade_no
    elif attempt_state is AttemptState.REVERSED and trade is None:
        # WeChat Pay's reverse of a trade it never made (6666: the pay never reached it)
        # leaves nothing at all; the others close the trade number.
        assert (ending, channel) == ("6666", Channel.WECHAT), recorded.events
    elif attempt_state is AttemptState.REVERSED:
        assert trade.state.value in ("CLOSED", "REVOKED")
    else:
        assert trade is None or trade.state.value == "PAYERROR"


async def paid(
    world: World, channel: Channel, amount: int = 8000, ending: str = "0000"
) -> TradeRef:
    """A paid trade, confirmed by query as the engine does (UnionPay's 00 is "accepted")."""
    pay_call = call(provider_id(), channel, ending, amount)
    provider = world.providers[channel]
    answer = await provider.pay(pay_call)
    assert answer.status in (TradeStatus.PAID, TradeStatus.CONFIRMING)
    confirmed = await provider.query(pay_call.trade)
    assert confirmed.status is TradeStatus.PAID
    return replace(pay_call.trade, trade_no=confirmed.trade_no)


def refund_of(trade: TradeRef, amount: int, refund_no: str = "") -> RefundCall:
    return RefundCall(trade, refund_no or provider_id("R"), amount, int(time.time() * 1000))


async def settled(world: World, channel: Channel, refund: RefundCall) -> RefundAnswer:
    """Send the refund, then ask its own query until the answer is final."""
    provider = world.providers[channel]
    answer = await provider.refund(refund)
    for _ in range(100):
        if answer.final:
            return answer
        await asyncio.sleep(0.05)
        answer = await provider.refund_query(refund)
    raise AssertionError(f"refund {refund.out_refund_no} still {answer}")


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_refunds_partial_then_full_never_more(world: World, channel: Channel) -> None:
    provider = world.providers[channel]
    trade = await paid(world, channel)
    first = await settled(world, channel, refund_of(trade, 3000))
    assert first.status is RefundStatus.SUCCEEDED
    again = await settled(world, channel, refund_of(trade, 5000))
    assert again.status is RefundStatus.SUCCEEDED
    refused = await provider.refund(refund_of(trade, 1))
    assert refused.status is RefundStatus.FAILED  # a documented final refusal
    ledger = world.sandboxes.bank(channel).trade(trade.out_trade_no)
    assert ledger is not None and ledger.refunded_fen == 8000


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
@pytest.mark.parametrize("ending", sorted(REFUND_EXPECTED))
async def test_unclear_refunds_are_settled_by_the_refund_query(
    world: World, channel: Channel, ending: str
) -> None:
    provider = world.providers[channel]
    trade = await paid(world, channel, ending=ending)
    refund = refund_of(trade, 2000)
    first: RefundAnswer | None
    try:
        first = await asyncio.wait_for(provider.refund(refund), 0.5)
    except TimeoutError:  # 2424: the first answer is lost
        first = None
    if ending == "2323":
        assert first is not None and first.status is RefundStatus.PENDING
        # Alipay's refund query shows a refund only once it is done (its older contract).
        processing = RefundStatus.NOT_FOUND if channel is Channel.ALIPAY else RefundStatus.PENDING
        assert (await provider.refund_query(refund)).status is processing
    if ending == "2424":
        assert first is None
        resent = await provider.refund(refund)
        if channel is Channel.WECHAT:  # the same out_refund_no answers with that refund
            assert resent.status is RefundStatus.SUCCEEDED, resent
        else:  # "already refunded": not final by itself
            assert resent.status is RefundStatus.PENDING, resent
    final = await settled(world, channel, refund)
    assert final.status.value == REFUND_EXPECTED[ending].value, final
    ledger = world.sandboxes.bank(channel).trade(trade.out_trade_no)
    assert ledger is not None
    assert ledger.refunded_fen == (2000 if final.status is RefundStatus.SUCCEEDED else 0)


async def test_a_whole_unionpay_sale_is_voided_the_same_day(world: World) -> None:
    trade = await paid(world, Channel.UNIONPAY)
    answer = await settled(world, Channel.UNIONPAY, refund_of(trade, 8000))
    assert answer.status is RefundStatus.SUCCEEDED and answer.reason == "voided"
    ledger = world.sandboxes.bank(Channel.UNIONPAY).trade(trade.out_trade_no)
    assert ledger is not None and [r.kind for r in ledger.refunds] == ["void"]


async def test_a_resent_refund_number_refunds_once(world: World) -> None:
    trade = await paid(world, Channel.WECHAT)
    refund = refund_of(trade, 100)
    for _ in range(3):
        assert (await world.providers[Channel.WECHAT].refund(refund)).status is (
            RefundStatus.SUCCEEDED
        )
    ledger = world.sandboxes.bank(Channel.WECHAT).trade(trade.out_trade_no)
    assert ledger is not None and ledger.refunded_fen == 100


async def test_bills_come_in_each_providers_format(world: World) -> None:
    for channel in PROVIDER_CHANNELS:
        trade = await paid(world, channel, amount=12345)
        await settled(world, channel, refund_of(trade, 345))
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
    unionpay = await world.providers[Channel.UNIONPAY].bill(TODAY)  # type: ignore[attr-defined]
    with zipfile.ZipFile(io.BytesIO(unionpay)) as archive:  # inflated from fileContent
        [name] = archive.namelist()
        lines = archive.read(name).split(b"\r\n")
    assert name == f"INN{TODAY:%y%m%d}88ZM_898000000000001"
    assert all(len(line) == 607 for line in lines[:-1]) and lines[-1] == b""
    assert any(b" 000000012345 " in line for line in lines)  # fixed width, fen


async def test_the_gateway_refuses_a_request_signed_with_another_key(world: World) -> None:
    good = wechat_merchant(world.keys_dir)
    stranger = generate_key()
    forged = replace(good, private=stranger)  # claims our serial, signs with another key
    settings = world.config.providers[Channel.WECHAT]
    client = HttpClient(settings.base_url)
    trust = wechat_trust(world.keys_dir, settings.credentials)
    provider = WeChatPay(client, good, settings.merchant_id, settings.app_id, trust)
    try:
        await provider.query(TradeRef(provider_id("W"), 8000, 0))  # learns the certificates
        provider._keys = forged
        with pytest.raises(ProviderRejected, match="SIGN_ERROR"):
            await provider.pay(call(provider_id("F"), Channel.WECHAT))
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
            await tampering.pay(call(provider_id("T"), channel))
    finally:
        await client.close()
        await providers.close()


class Recording(HttpClient):
    """Passes requests on and keeps the form fields of each (UnionPay's are a form)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.sent: list[dict[str, str]] = []
        self.timeouts: list[tuple[str, object]] = []

    async def request(self, method: str, target: str, **kwargs: object) -> HttpAnswer:  # type: ignore[override]
        body = kwargs.get("body")
        if isinstance(body, bytes):
            self.sent.append(dict(parse_qsl(body.decode())))
        self.timeouts.append((target, kwargs.get("timeout_s")))
        return await super().request(method, target, **kwargs)  # type: ignore[arg-type]

    async def download(self, url: str, *, timeout_s: float, redirects: int = 5) -> HttpAnswer:
        self.timeouts.append((url, timeout_s))  # (a bill file fetched as given)
        return await super().download(url, timeout_s=timeout_s, redirects=redirects)


async def test_unionpay_query_and_reversal_carry_the_original_txn_time(world: World) -> None:
    providers = build_providers(world.config, world.keys_dir)
    adapter = providers[Channel.UNIONPAY].inner  # type: ignore[attr-defined]
    client = Recording(world.config.providers[Channel.UNIONPAY].base_url)
    adapter._http = client
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    sale = replace(call(provider_id(), Channel.UNIONPAY), at_ms=an_hour_ago)
    try:
        await adapter.pay(sale)
        assert (await adapter.query(sale.trade)).status is TradeStatus.PAID
        await adapter.reverse(sale.trade)
    finally:
        await client.close()
        await providers.close()
    [pay, query, reversal] = client.sent
    assert pay["txnTime"] == txn_time(an_hour_ago) and pay["backUrl"]
    for sent in (query, reversal):
        assert (sent["orderId"], sent["txnTime"]) == (sale.out_trade_no, pay["txnTime"])
    ledger = world.sandboxes.bank(Channel.UNIONPAY).trade(sale.out_trade_no)
    assert ledger is not None and ledger.state.value == "REVOKED"  # the reversal found it


async def test_a_unionpay_query_at_the_wrong_time_finds_nothing(world: World) -> None:
    """Why the original txnTime matters: the host names a transaction by both."""
    provider = world.providers[Channel.UNIONPAY]
    sale = call(provider_id(), Channel.UNIONPAY)
    await provider.pay(sale)
    wrong = replace(sale.trade, at_ms=sale.at_ms + 5_000)
    assert (await provider.query(wrong)).status is TradeStatus.NOT_FOUND
    assert (await provider.query(sale.trade)).status is TradeStatus.PAID


async def test_adapters_refuse_trade_numbers_their_gateway_would_not_accept(world: World) -> None:
    with pytest.raises(ProviderRejected, match="8-40 letters or digits"):
        await world.providers[Channel.UNIONPAY].pay(call("SP01-ABC-1", Channel.UNIONPAY))
    with pytest.raises(ProviderRejected, match="letters, digits, _ only"):
        await world.providers[Channel.ALIPAY].pay(call("SP01-ABC-1", Channel.ALIPAY))


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_an_answer_about_another_trade_is_unknown_and_counted(
    world: World, channel: Channel
) -> None:
    sale = call(provider_id(), channel, "1313")
    before = _mismatches(channel)
    # The answer names another trade; the refusal names it and the one asked about.
    asked = rf"answer names (out_trade_no|orderId) '\w+', the request '{sale.out_trade_no}'"
    with pytest.raises(AnswerMismatch, match=f"^{asked}$"):
        await world.providers[channel].pay(sale)
    assert _mismatches(channel) == before + 1
    # The query, about this very trade, is what decides.
    assert (await world.providers[channel].query(sale.trade)).status in (
        TradeStatus.PAID,
        TradeStatus.CONFIRMING,
    )


@pytest.mark.parametrize("channel", PROVIDER_CHANNELS)
async def test_an_unsigned_5xx_to_a_pay_is_unknown_not_a_refusal(
    world: World, channel: Channel
) -> None:
    sale = call(provider_id(), channel, "1212")
    with pytest.raises(OutcomeUnknown, match=r"HTTP 503|unsigned 503"):
        await world.providers[channel].pay(sale)
    with pytest.raises(ProviderError) as resent:  # "already paid" is no decline either
        await world.providers[channel].pay(sale)
    assert not isinstance(resent.value, ProviderUnavailable)
    assert (await world.providers[channel].query(sale.trade)).status is TradeStatus.PAID


async def test_response_headers_are_read_whatever_their_case(world: World) -> None:
    client = HttpClient(world.config.providers[Channel.WECHAT].base_url)
    try:
        answer = await client.request("GET", "/v3/pay/transactions/out-trade-no/X?mchid=1")
    finally:
        await client.close()
    assert answer.headers.get("wechatpay-signature") == answer.headers["Wechatpay-Signature"]
    assert answer.headers["WECHATPAY-SERIAL"]


def _mismatches(channel: Channel) -> float:
    value = REGISTRY.get_sample_value(
        "windowpay_provider_answer_mismatches_total",
        {"provider": channel.value, "operation": "pay"},
    )
    return value or 0.0


@pytest.mark.parametrize("channel", [Channel.WECHAT, Channel.ALIPAY])
async def test_every_bill_download_has_a_timeout(world: World, channel: Channel) -> None:
    providers = build_providers(world.config, world.keys_dir)
    adapter = providers[channel].inner  # type: ignore[attr-defined]
    client = Recording(world.config.providers[channel].base_url)
    adapter._http = client
    try:
        await adapter.bill(TODAY)
    finally:
        await client.close()
        await providers.close()
    [(url, timeout)] = [(t, s) for t, s in client.timeouts if "://" in t]  # the file itself
    assert isinstance(timeout, float) and 0 < timeout <= 120, url


async def test_a_download_that_hangs_ends_at_its_timeout() -> None:
    given_up = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await given_up.wait()  # no answer before the client has stopped waiting
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/bill", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = HttpClient(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    try:
        with pytest.raises(OutcomeUnknown):
            await client.request("GET", "/bill", timeout_s=0.3)
        took = time.monotonic() - started
    finally:
        given_up.set()
        await client.close()
        await runner.cleanup()
    assert took < 5  # the client's own timeout ended it (the server never answered)
