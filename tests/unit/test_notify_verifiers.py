"""Each channel's notification verifier against what its sandbox gateway signs: the
genuine one is read, anything forged, unsigned, replayed or undecryptable is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.sandboxes import gateways_for
from orchestrator.channels.unionpay.notify import UnionPayNotifications
from orchestrator.channels.unionpay.wiring import unionpay_keys
from orchestrator.channels.wechat.notify import WeChatNotifications
from orchestrator.channels.wechat.platform import PUBLIC_KEY_PREFIX
from orchestrator.config import Config
from orchestrator.domain.states import Channel
from orchestrator.providers.keys import provider_keys
from orchestrator.providers.notices import Notice, NoticeRefused
from orchestrator.providers.port import RefundStatus, TradeStatus
from orchestrator.providers.signing import PublicKey
from orchestrator.sandbox.bank import Trade, TradeRefund
from orchestrator.sandbox.common import Gateway, Notification
from tests.support import code, small_config

SKEW = 300.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    keys_dir = tmp_path_factory.mktemp("keys")
    config = small_config()
    ensure_dev_keys(keys_dir, config.sandboxed())
    yield config, keys_dir


@pytest.fixture
def gateways(world: tuple[Config, Path]) -> dict[Channel, Gateway[Any]]:
    config, keys_dir = world
    return gateways_for(config, keys_dir)


async def paid(gateway: Gateway[Any], amount: int = 8000) -> Trade:
    out_trade_no = f"G1ABCDEFGHIJKLMNP1{int(time.time() * 1e6) % 10**6:06d}"
    reply = await gateway.bank.pay(out_trade_no, code(Channel(gateway.name)), amount, "G1")
    assert reply.trade is not None
    return reply.trade


async def refunded(gateway: Gateway[Any], trade: Trade, amount: int) -> tuple[Trade, TradeRefund]:
    reply = await gateway.bank.refund(trade.out_trade_no, f"{trade.out_trade_no}R1ABCDEF", amount)
    assert reply.trade is not None and reply.refund is not None
    return reply.trade, reply.refund


def headers_of(notification: Notification) -> dict[str, str]:
    return {"Content-Type": notification.content_type, **notification.headers}


# ---- WeChat Pay ------------------------------------------------------------------------


def wechat_verifier(
    gateway: Gateway[Any], *, clock: float | None = None, apiv3_key: bytes | None = None
) -> WeChatNotifications:
    keys = gateway.keys
    known: dict[str, PublicKey] = {keys.own_serial: keys.private.public_key()}

    async def key_for(serial: str) -> PublicKey | None:
        return known.get(serial)

    now = time.time() if clock is None else clock
    return WeChatNotifications(
        key_for, apiv3_key or keys.apiv3_key, gateway.merchant_id, SKEW, lambda: now
    )


async def test_wechat_payment_and_refund_notifications_are_read(
    gateways: dict[Channel, Gateway[Any]],
) -> None:
    gateway = gateways[Channel.WECHAT]
    trade = await paid(gateway)
    sent = gateway.notification(trade, None)
    notice = await wechat_verifier(gateway).verify(headers_of(sent), sent.body)
    assert notice == Notice(
        Channel.WECHAT, trade.out_trade_no, trade.trade_no, 8000, TradeStatus.PAID
    )
    after, refund = await refunded(gateway, trade, 3000)
    sent = gateway.notification(after, refund)
    notice = await wechat_verifier(gateway).verify(headers_of(sent), sent.body)
    assert (notice.out_refund_no, notice.amount_fen, notice.refund_status) == (
        refund.out_refund_no,
        3000,
        RefundStatus.SUCCEEDED,
    )
    assert notice.out_trade_no == trade.out_trade_no and notice.refund_no == refund.refund_no


# Each spoiled notification is refused for its own reason, not by the first check it meets.
WECHAT_REFUSALS = {
    "forged": "^signature does not verify$",
    "unsigned": r"^unsigned: a Wechatpay-\* signature header is missing$",
    "old": r"^timestamp '[0-9]+' outside the allowed skew \(replay\?\)$",
    "unknown serial": "^signed under unknown serial 'PUB_KEY_ID_0000'$",
    "wrong apiv3 key": "^resource does not decrypt with the APIv3 key$",
    "other merchant": "^resource names another merchant: answer names mchid '1900000999', "
    "the request '1900000109'$",
}


@pytest.mark.parametrize("spoil", list(WECHAT_REFUSALS))
async def test_wechat_refuses(gateways: dict[Channel, Gateway[Any]], spoil: str) -> None:
    gateway = gateways[Channel.WECHAT]
    trade = await paid(gateway)
    if spoil == "other merchant":
        gateway.merchant_id, mine = "1900000999", gateway.merchant_id
        sent = gateway.notification(trade, None)
        gateway.merchant_id = mine
    else:
        sent = gateway.notification(trade, None)
    headers, body = headers_of(sent), sent.body
    verifier = wechat_verifier(gateway)
    if spoil == "forged":
        body = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCES5"')
    elif spoil == "unsigned":
        del headers["Wechatpay-Signature"]
    elif spoil == "old":
        verifier = wechat_verifier(gateway, clock=time.time() + SKEW + 60)
    elif spoil == "unknown serial":
        headers["Wechatpay-Serial"] = f"{PUBLIC_KEY_PREFIX}0000"
    elif spoil == "wrong apiv3 key":
        verifier = wechat_verifier(gateway, apiv3_key=b"k" * 32)
    with pytest.raises(NoticeRefused, match=WECHAT_REFUSALS[spoil]):
        await verifier.verify(headers, body)


# ---- Alipay ------------------------------------------------------------------------------


def alipay_verifier(
    world: tuple[Config, Path], gateway: Gateway[Any], clock: float | None = None
) -> AlipayNotifications:
    config, keys_dir = world
    public = provider_keys(keys_dir, "alipay").for_merchant().peer_public
    now = time.time() if clock is None else clock

    async def refunds(out_trade_no: str, out_request_no: str) -> tuple[int, str, str] | None:
        reply = await gateway.bank.refund_status(out_trade_no, out_request_no)
        if reply.refund is None or reply.trade is None:
            return None
        return reply.refund.amount_fen, "REFUND_SUCCESS", reply.trade.trade_no

    return AlipayNotifications(
        public, config.providers[Channel.ALIPAY].merchant_id, SKEW, lambda: now, refunds=refunds
    )


async def test_alipay_payment_and_refund_notifications_are_read(
    world: tuple[Config, Path], gateways: dict[Channel, Gateway[Any]]
) -> None:
    gateway = gateways[Channel.ALIPAY]
    trade = await paid(gateway, 12345)
    sent = gateway.notification(trade, None)
    assert sent.expects == "success"
    notice = await alipay_verifier(world, gateway).verify({}, sent.body)
    assert notice == Notice(
        Channel.ALIPAY, trade.out_trade_no, trade.trade_no, 12345, TradeStatus.PAID
    )
    after, refund = await refunded(gateway, trade, 345)
    sent = gateway.notification(after, refund)
    notice = await alipay_verifier(world, gateway).verify({}, sent.body)
    assert (notice.out_refund_no, notice.amount_fen, notice.refund_status) == (
        refund.out_refund_no,
        345,
        RefundStatus.SUCCEEDED,
    )


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode()))


ALIPAY_REFUSALS = {
    "forged": "^signature does not verify$",
    "unsigned": "^unsigned: no sign parameter$",
    # Alipay resends for about 25 hours: a notification older than 48 h is no resend.
    "older than the resends": "^notify_time .* is older than Alipay's resends$",
    "ahead": "^notify_time .* is ahead of our clock$",
    "other app": "^notification for another app_id$",
    "RSA": "^sign_type 'RSA' is not RSA2$",
}


@pytest.mark.parametrize("spoil", list(ALIPAY_REFUSALS))
async def test_alipay_refuses(
    world: tuple[Config, Path], gateways: dict[Channel, Gateway[Any]], spoil: str
) -> None:
    gateway = gateways[Channel.ALIPAY]
    trade = await paid(gateway)
    if spoil == "other app":
        gateway.merchant_id, mine = "2021000000000999", gateway.merchant_id
        sent = gateway.notification(trade, None)
        gateway.merchant_id = mine
    else:
        sent = gateway.notification(trade, None)
    params = _form(sent.body)
    verifier = alipay_verifier(world, gateway)
    if spoil == "forged":
        params["total_amount"] = "0.01"
    elif spoil == "unsigned":
        del params["sign"]
    elif spoil == "older than the resends":
        verifier = alipay_verifier(world, gateway, clock=time.time() + 49 * 3600)
    elif spoil == "ahead":
        verifier = alipay_verifier(world, gateway, clock=time.time() - SKEW - 60)
    elif spoil == "RSA":
        params["sign_type"] = "RSA"
    with pytest.raises(NoticeRefused, match=ALIPAY_REFUSALS[spoil]):
        await verifier.verify({}, urlencode(params).encode())


# ---- UnionPay ----------------------------------------------------------------------------


def unionpay_verifier(
    world: tuple[Config, Path], clock: float | None = None
) -> UnionPayNotifications:
    config, keys_dir = world
    settings = config.providers[Channel.UNIONPAY]
    now = time.time() if clock is None else clock
    return UnionPayNotifications(
        unionpay_keys(keys_dir, settings.credentials), settings.merchant_id, lambda: now
    )


async def test_unionpay_sale_and_void_notifications_are_read(
    world: tuple[Config, Path], gateways: dict[Channel, Gateway[Any]]
) -> None:
    gateway = gateways[Channel.UNIONPAY]
    trade = await paid(gateway, 500)
    sent = gateway.notification(trade, None)
    notice = await unionpay_verifier(world).verify({}, sent.body)
    assert notice == Notice(
        Channel.UNIONPAY, trade.out_trade_no, trade.trade_no, 500, TradeStatus.PAID
    )
    refund_no = f"{trade.out_trade_no}R1ABCDEF"
    reply = await gateway.bank.refund(trade.out_trade_no, f"{refund_no}V", 500, "void")
    assert reply.trade is not None and reply.refund is not None
    sent = gateway.notification(reply.trade, reply.refund)
    notice = await unionpay_verifier(world).verify({}, sent.body)
    assert (notice.out_refund_no, notice.trade_no, notice.refund_status) == (
        refund_no,  # the void's "V" is the adapter's, not the refund's
        trade.trade_no,
        RefundStatus.SUCCEEDED,
    )


UNIONPAY_REFUSALS = {
    "forged": "^signature does not verify$",
    "unsigned": "^unsigned: no signature field$",
    "untrusted certificate": "^signPubKeyCert not trusted: ",
    "other merId": "^notification for another merId$",
}


@pytest.mark.parametrize("spoil", list(UNIONPAY_REFUSALS))
async def test_unionpay_refuses(
    world: tuple[Config, Path], gateways: dict[Channel, Gateway[Any]], spoil: str
) -> None:
    gateway = gateways[Channel.UNIONPAY]
    trade = await paid(gateway)
    if spoil == "untrusted certificate":
        gateway.keys.sign_with_untrusted()
    if spoil == "other merId":
        gateway.merchant_id = "898000000000999"
    fields = _form(gateway.notification(trade, None).body)
    if spoil == "forged":
        fields["txnAmt"] = "1"
    elif spoil == "unsigned":
        del fields["signature"]
    with pytest.raises(NoticeRefused, match=UNIONPAY_REFUSALS[spoil]):
        await unionpay_verifier(world).verify({}, urlencode(fields).encode())


async def test_a_notice_that_tells_no_outcome_is_not_final(
    world: tuple[Config, Path], gateways: dict[Channel, Gateway[Any]]
) -> None:
    gateway = gateways[Channel.WECHAT]
    trade = await paid(gateway)
    waiting = replace(trade, state=type(trade.state)("USERPAYING"))
    sent = gateway.notification(waiting, None)
    notice = await wechat_verifier(gateway).verify(headers_of(sent), sent.body)
    assert notice.trade_status is TradeStatus.CONFIRMING and not notice.final
    assert orjson.loads(sent.body)["event_type"] == "TRANSACTION.SUCCESS"
