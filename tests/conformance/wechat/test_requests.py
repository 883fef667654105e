"""windowpay's requests against the published request samples: each body holds the fields
the document requires and no field the document does not know, and wechatpayv3 takes
each request's Authorization (conftest.Gateway verifies every one)."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import utils as wechatpayv3_utils

from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.wechat import files
from orchestrator.channels.wechat.adapter import WeChatPay
from orchestrator.channels.wechat.platform import WeChatTrust
from orchestrator.channels.wechat.wiring import adapter as wired_adapter
from orchestrator.config import ConfigError
from orchestrator.domain.states import Channel
from orchestrator.providers.port import PayCall, QrCall, RefundCall, TradeRef
from tests.conformance.wechat.conftest import (
    APIV3_KEY,
    MCHID,
    PUBLIC_KEY_ID,
    Gateway,
    Party,
    Sent,
    adapter_for,
    error_sample,
    fields,
    sample_json,
    sandbox_config,
)

NO = "1217752501201407033233368018"
EXPIRES_MS = int(time.time() * 1000) + 120_000
PAY = PayCall(NO, "130061098828009406", 100, "SP01", "T01", "科目一")
QR = QrCall(NO, 100, "SP01", "T01", "科目一", 0, EXPIRES_MS)

# What each document marks 必填 (required) in the body windowpay sends.
REQUIRED = {
    "codepay": {
        "appid", "mchid", "description", "out_trade_no", "payer.auth_code", "amount.total",
        "scene_info.store_info.out_id",
    },
    "native": {"appid", "mchid", "description", "out_trade_no", "notify_url", "amount.total"},
    "reverse": {"appid", "mchid"},
    "close": {"mchid"},
    "refund": {"out_refund_no", "amount.refund", "amount.total", "amount.currency"},
}  # fmt: skip


async def sent_by(gateway: Gateway, operation: str) -> Sent:
    adapter = adapter_for(gateway)
    gateway.answer(204, b"")  # what the answer says does not matter here
    calls: dict[str, Any] = {
        "codepay": lambda: adapter.pay(PAY),
        "native": lambda: adapter.create_qr(QR),
        "reverse": lambda: adapter.reverse(TradeRef(NO, 100, 0)),
        "close": lambda: adapter.close(TradeRef(NO, 100, 0)),
        "refund": lambda: adapter.refund(RefundCall(TradeRef(NO, 100, 0), "R" + NO, 100, 0)),
    }  # fmt: skip
    with contextlib.suppress(Exception):  # the request, not the answer, is under test
        await calls[operation]()
    return gateway.sent[0]


@pytest.mark.parametrize("operation", sorted(REQUIRED))
async def test_each_body_has_the_documented_fields(gateway: Gateway, operation: str) -> None:
    sent = await sent_by(gateway, operation)
    documented = fields(sample_json(f"requests/{operation}.json"))
    body = fields(sent.json)
    assert REQUIRED[operation] <= body, REQUIRED[operation] - body
    assert body <= documented, body - documented


async def test_native_sends_scene_info_with_the_payer_client_ip(gateway: Gateway) -> None:
    """Native下单's scene_info requires payer_client_ip; without it WeChat answers
    PARAM_ERROR to every Native order."""
    scene = (await sent_by(gateway, "native")).json["scene_info"]
    ipaddress.ip_address(scene["payer_client_ip"])
    assert scene["store_info"]["id"] == "SP01"
    assert set(scene) <= set(sample_json("requests/native.json")["scene_info"])


def wired(keys_dir: Path, platform: Party, **provider: str | bool) -> tuple[WeChatPay, Gateway]:
    """windowpay's adapter as the deployment builds it from `provider` settings (wiring.py),
    talking to the scripted gateway, which knows the merchant key made under keys_dir."""
    ensure_dev_keys(keys_dir, [Channel.WECHAT])
    key = serialization.load_pem_private_key(files.merchant_key(keys_dir).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    certificate = x509.load_pem_x509_certificate(files.merchant_cert(keys_dir).read_bytes())
    settings = sandbox_config(**provider).providers[Channel.WECHAT]
    gateway = Gateway(Party(key, certificate), platform, settings.merchant_id)
    return wired_adapter(gateway, settings, keys_dir), gateway


async def test_a_configured_payer_client_ip_is_what_native_sends(
    tmp_path: Path, platform: Party
) -> None:
    """The config's payer_client_ip overrides the address found at start (behind an
    outbound NAT, WeChat sees another one); it used to be dropped as an unknown name."""
    adapter, gateway = wired(tmp_path, platform, payer_client_ip="203.0.113.7")
    gateway.answer(204, b"")
    with contextlib.suppress(Exception):  # the request is under test
        await adapter.create_qr(QR)
    assert gateway.sent[0].json["scene_info"]["payer_client_ip"] == "203.0.113.7"
    with pytest.raises(ConfigError, match=r"payer_client_ip: 'gateway\.local' is not an IPv4"):
        wired(tmp_path, platform, payer_client_ip="gateway.local")


async def test_partner_mode_is_the_partner_switch(tmp_path: Path, platform: Party) -> None:
    adapter, gateway = wired(tmp_path, platform, partner=True, sub_merchant_id="1900000109")
    gateway.answer(*error_sample("SYSTEM_ERROR"))
    with contextlib.suppress(Exception):  # the request is under test
        await adapter.pay(PAY)
    assert gateway.sent[0].target == "/v3/pay/partner/transactions/codepay"
    assert gateway.sent[0].json["sub_mchid"] == "1900000109"
    with pytest.raises(ConfigError, match="sub_app_id: is set, but partner = false"):
        wired(tmp_path, platform, sub_app_id="wxd678efhjkfhsdk")


async def test_in_public_key_mode_every_request_names_the_public_key(gateway: Gateway) -> None:
    """As the official SDKs send it (wechatpay-java AbstractHttpClient, wechatpayv3
    Core.request): while a merchant moves to the WeChat Pay public key, WeChat Pay signs
    each answer with the key the request's Wechatpay-Serial names, and the move completes
    only once the requests name it. windowpay used to send no Wechatpay-Serial at all."""
    for operation in sorted(REQUIRED):
        sent = await sent_by(gateway, operation)
        assert sent.headers.get("Wechatpay-Serial") == PUBLIC_KEY_ID, operation
        gateway.sent.clear()
    certificates_only = adapter_for(gateway, trust=WeChatTrust(APIV3_KEY.encode()))
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))
    with contextlib.suppress(Exception):  # the request is under test
        await certificates_only.query(TradeRef(NO, 100, 0))
    assert "Wechatpay-Serial" not in gateway.sent[-1].headers


async def test_the_refund_carries_the_notify_url(gateway: Gateway) -> None:
    sent = await sent_by(gateway, "refund")
    assert sent.json["notify_url"] == "https://example.gov.cn/notify/wechat"
    assert sent.json["out_trade_no"] == NO


async def test_wechatpayv3_makes_the_same_authorization(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RSA PKCS#1 v1.5 is deterministic: wechatpayv3, given windowpay's nonce, timestamp,
    path and body, computes the very signature windowpay sent."""
    sent = await sent_by(gateway, "codepay")
    auth = sent.authorization
    monkeypatch.setattr(wechatpayv3_utils.time, "time", lambda: float(auth["timestamp"]))
    theirs = wechatpayv3_utils.build_authorization(
        sent.target, sent.method, MCHID, gateway.merchant.serial, gateway.merchant.key,
        data=sent.body.decode(), nonce_str=auth["nonce_str"],
    )  # fmt: skip
    assert f'signature="{auth["signature"]}"' in theirs


async def test_a_partner_uses_the_partner_paths_and_ids(gateway: Gateway) -> None:
    adapter: WeChatPay = adapter_for(gateway, sub_mchid="1900000109", sub_appid="wxd678efhjkfhsdk")
    gateway.answer(*error_sample("SYSTEM_ERROR"))
    gateway.answer(204, b"")
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))
    gateway.answer(*error_sample("RESOURCE_NOT_EXISTS"))
    for call in (
        adapter.pay(PAY),
        adapter.close(TradeRef(NO, 100, 0)),
        adapter.query(TradeRef(NO, 100, 0)),
        adapter.refund_query(RefundCall(TradeRef(NO, 100, 0), "R" + NO, 100, 0)),
    ):
        with contextlib.suppress(Exception):  # the requests are under test
            await call
    pay, close, query, refund = gateway.sent
    assert pay.target == "/v3/pay/partner/transactions/codepay"
    assert fields(pay.json) <= fields(sample_json("requests/codepay_partner.json"))
    assert {pay.json[k] for k in ("sp_mchid", "sub_mchid", "sub_appid")} == {
        MCHID, "1900000109", "wxd678efhjkfhsdk",
    }  # fmt: skip
    assert close.target == f"/v3/pay/partner/transactions/out-trade-no/{NO}/close"
    assert close.json == {"sp_mchid": MCHID, "sub_mchid": "1900000109"}
    assert query.target == (
        f"/v3/pay/partner/transactions/out-trade-no/{NO}?sp_mchid={MCHID}&sub_mchid=1900000109"
    )
    assert refund.target == f"/v3/refund/domestic/refunds/R{NO}?sub_mchid=1900000109"
