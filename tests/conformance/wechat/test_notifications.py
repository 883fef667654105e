"""WeChat Pay's notifications: the official Go SDK's signed sample checked with its public
certificate; the documents' resources sealed (AEAD_AES_256_GCM, by `cryptography` here)
and signed by wechatpayv3 as the platform, which windowpay's listener must take; partner
notifications naming the sub-merchant; and the sandbox's own notifications, which
wechatpayv3 must take as WeChat Pay's."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3.core import Core
from wechatpayv3.utils import rsa_sign, rsa_verify

from orchestrator.channels.wechat.adapter import answer_message
from orchestrator.channels.wechat.notify import WeChatNotifications
from orchestrator.channels.wechat.platform import decrypt_resource
from orchestrator.domain.states import Channel
from orchestrator.providers.notices import Notice, NoticeProbe, NoticeRefused
from orchestrator.providers.port import RefundStatus, TradeStatus
from orchestrator.providers.signing import PublicKey, verify
from tests.conformance.wechat.conftest import (
    APIV3_KEY,
    MCHID,
    SIGNATURE_TYPE,
    SUB_MCHID,
    Party,
    Sandbox,
    sample_json,
    shape_problems,
)

SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"  # the documents' platform serial


def verifier(
    key: PublicKey, serial: str, apiv3_key: bytes, mchid: str, now: float, **partner: str
) -> WeChatNotifications:
    async def key_for(asked: str) -> PublicKey | None:
        return key if asked == serial else None

    return WeChatNotifications(key_for, apiv3_key, mchid, 300.0, lambda: now, **partner)


# ---- the Go SDK's signed notification ------------------------------------------------------

GO = sample_json("notifications/go_sdk_signed.json")


def go_sample() -> tuple[dict[str, str], bytes, PublicKey]:
    certificate = x509.load_pem_x509_certificate(GO["certificate"].encode())
    public = certificate.public_key()
    assert format(certificate.serial_number, "X") == GO["headers"]["Wechatpay-Serial"]
    return dict(GO["headers"]), GO["body"].encode(), public  # type: ignore[return-value]


def test_the_go_sdk_sample_verifies_and_opens_with_public_material() -> None:
    headers, body, public = go_sample()
    stamp, nonce = headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"]
    signature = headers["Wechatpay-Signature"]
    assert verify(public, answer_message(stamp, nonce, body), signature)  # windowpay's
    assert rsa_verify(stamp, nonce, body.decode(), signature, public)  # wechatpayv3's
    resource = json.loads(body)["resource"]
    opened = decrypt_resource(GO["apiv3_key"].encode(), resource)
    assert json.loads(opened) == json.loads(GO["plaintext"])


async def test_the_go_sdk_sample_passes_every_check_of_the_listener() -> None:
    """Signature, replay window, decryption and merchant pass; windowpay then refuses it
    only because a 签约 (PAYSCORE) event is no payment or refund."""
    headers, body, public = go_sample()
    listener = verifier(public, headers["Wechatpay-Serial"], GO["apiv3_key"].encode(),
                        "1234567890", GO["now"])  # fmt: skip
    with pytest.raises(NoticeRefused, match=r"^PAYSCORE\.USER_OPEN_SERVICE: "):
        await listener.verify(headers, body)
    with pytest.raises(NoticeRefused, match="signature does not verify"):
        await listener.verify(headers, body.replace("签约成功".encode(), "签约失败".encode()))


# ---- the documents' resources, sealed and signed by the counterpart ------------------------


def sealed(resource: dict[str, Any], original: str) -> dict[str, str]:
    nonce = secrets.token_hex(6)
    plaintext = json.dumps(resource, ensure_ascii=False).encode()
    ciphertext = AESGCM(APIV3_KEY.encode()).encrypt(nonce.encode(), plaintext, original.encode())
    return {
        "original_type": original,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": original,
        "nonce": nonce,
    }


def notification(
    platform: Party, resource: dict[str, Any], event: str, signature_type: str = SIGNATURE_TYPE
) -> tuple[dict[str, str], bytes]:
    """The documents' envelope around `resource`, signed by wechatpayv3 as the platform."""
    envelope = sample_json("notifications/envelope_transaction.json")
    original = "refund" if event.startswith("REFUND.") else "transaction"
    envelope.update(event_type=event, summary="退款成功" if original == "refund" else "支付成功")
    envelope["resource"] = sealed(resource, original)
    body = json.dumps(envelope, ensure_ascii=False).encode()
    stamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return {
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": SERIAL,
        "Wechatpay-Signature": rsa_sign(platform.key, f"{stamp}\n{nonce}\n{body.decode()}\n"),
        "Wechatpay-Signature-Type": signature_type,
    }, body


def listener(platform: Party, mchid: str, **partner: str) -> WeChatNotifications:
    return verifier(platform.key.public_key(), SERIAL, APIV3_KEY.encode(), mchid, time.time(),
                    **partner)  # fmt: skip


async def test_a_documented_payment_notification(platform: Party) -> None:
    resource = sample_json("notifications/transaction_resource.json")
    headers, body = notification(platform, resource, "TRANSACTION.SUCCESS")
    notice = await listener(platform, MCHID).verify(headers, body)
    assert notice == Notice(
        Channel.WECHAT, "1217752501201407033233368018", "1217752501201407033233368018", 100,
        TradeStatus.PAID,
    )  # fmt: skip


async def test_a_documented_refund_notification(platform: Party) -> None:
    resource = sample_json("notifications/refund_resource.json")
    headers, body = notification(platform, resource, "REFUND.SUCCESS")
    notice = await listener(platform, "1900000100").verify(headers, body)
    assert (notice.out_trade_no, notice.out_refund_no, notice.amount_fen) == (
        "20150806125346", "7752501201407033233368018", 999,
    )  # fmt: skip
    assert (notice.refund_no, notice.refund_status) == (
        "50200207182018070300011301001", RefundStatus.SUCCEEDED,
    )  # fmt: skip


async def test_another_merchants_notification_is_refused(platform: Party) -> None:
    resource = sample_json("notifications/transaction_resource.json")
    headers, body = notification(platform, resource, "TRANSACTION.SUCCESS")
    with pytest.raises(NoticeRefused, match="another merchant"):
        await listener(platform, "1230000999").verify(headers, body)


async def test_a_signature_type_windowpay_does_not_speak_is_refused(platform: Party) -> None:
    resource = sample_json("notifications/transaction_resource.json")
    sm2 = "WECHATPAY2-SM2-WITH-SM3"
    headers, body = notification(platform, resource, "TRANSACTION.SUCCESS", sm2)
    with pytest.raises(NoticeRefused, match="signature type"):
        await listener(platform, MCHID).verify(headers, body)


async def test_wechat_pays_signature_probe_is_refused_as_a_probe(platform: Party) -> None:
    """WeChat Pay signs a very few notifications wrongly on purpose (the signature starts
    WECHATPAY/SIGNTEST/) to see that merchants verify. It is refused, as WeChat Pay
    expects, and named as its probe before any key is looked up: it used to be logged as
    a signature that does not verify, like a forgery, after a key lookup (which, for an
    unknown serial, downloads the platform certificates)."""
    resource = sample_json("notifications/transaction_resource.json")
    headers, body = notification(platform, resource, "TRANSACTION.SUCCESS")
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    looked_up: list[str] = []

    async def key_for(serial: str) -> PublicKey | None:
        looked_up.append(serial)
        return platform.key.public_key()

    probed = WeChatNotifications(key_for, APIV3_KEY.encode(), MCHID, 300.0)
    with pytest.raises(NoticeProbe, match=r"signature probe \(WECHATPAY/SIGNTEST/\)"):
        await probed.verify(headers, body)
    assert looked_up == []


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("notifications/transaction_resource_partner.json", "TRANSACTION.SUCCESS"),
        ("notifications/refund_resource_partner.json", "REFUND.SUCCESS"),
    ],
)
async def test_partner_notifications_must_name_the_sub_merchant(
    platform: Party, name: str, event: str
) -> None:
    resource = sample_json(name)
    sp_mchid = resource["sp_mchid"]
    headers, body = notification(platform, resource, event)
    notice = await listener(platform, sp_mchid, sub_mchid=SUB_MCHID).verify(headers, body)
    assert notice.out_trade_no == resource["out_trade_no"]
    for spoiled in (listener(platform, sp_mchid, sub_mchid="1900000999"),
                    listener(platform, sp_mchid)):  # fmt: skip
        with pytest.raises(NoticeRefused, match="another merchant"):
            await spoiled.verify(headers, body)


# ---- the sandbox's notifications, as wechatpayv3 reads them ---------------------------------


def wechatpayv3_reader(sandbox: Sandbox) -> Core:
    """wechatpayv3's notification reader, trusting the sandbox's platform certificate."""
    keys = sandbox.gateway.keys
    core = Core.__new__(Core)  # its constructor would download certificates at once
    core._certificates = [keys.listed[-1].certificate]
    core._public_key_id = None
    core._public_key = None
    core._apiv3_key = keys.apiv3_key.decode()
    core._logger = None
    return core


async def test_wechatpayv3_takes_the_sandboxs_notifications(sandbox: Sandbox) -> None:
    bank = sandbox.bank
    paid = await bank.pay("N" + secrets.token_hex(8), "134567890123450000", 8000, "SP01")
    assert paid.trade is not None
    refunded = await bank.refund(paid.trade.out_trade_no, "R" + paid.trade.out_trade_no, 3000)
    assert refunded.trade is not None and refunded.refund is not None
    reader = wechatpayv3_reader(sandbox)
    for sent, kind in (
        (sandbox.gateway.notification(paid.trade, None), "trade"),
        (sandbox.gateway.notification(refunded.trade, refunded.refund), "refund_resource"),
    ):
        read = reader.callback(sent.headers, sent.body)
        assert read is not None, "wechatpayv3 refused the sandbox's notification"
        assert shape_problems("envelope", json.loads(sent.body)) == []
        assert shape_problems(kind, read["resource"]) == []
