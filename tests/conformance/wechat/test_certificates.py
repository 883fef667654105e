"""Platform certificates: the official Java SDK's download answer opens to a real Tenpay
certificate; the AEAD_AES_256_GCM vectors of the Go SDK; wechatpayv3 opens what windowpay's
side seals; and (issue 21, item 7) a notification naming an unknown Wechatpay-Serial makes
the listener download /v3/certificates at most once a minute."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from wechatpayv3.utils import aes_decrypt, rsa_sign

from orchestrator.channels.wechat.adapter import _signed_by
from orchestrator.channels.wechat.notify import WeChatNotifications
from orchestrator.channels.wechat.platform import (
    PlatformKeys,
    WeChatTrust,
    certificates_of,
    decrypt_resource,
    encrypt_resource,
)
from orchestrator.providers.http import HttpAnswer
from orchestrator.providers.notices import NoticeRefused
from tests.conformance.wechat.conftest import APIV3_KEY, MCHID, Party, party, sample, sample_json

VECTORS = sample_json("certificates/aes_vectors.json")


def test_the_java_sdk_download_opens_to_a_tenpay_certificate() -> None:
    java = VECTORS["java_sdk_certificate_download"]
    body = sample("certificates/java_sdk_download.json")
    during = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    found = certificates_of(java["apiv3_key"].encode(), body, during)
    assert list(found) == [java["serial_no"]]
    subject = found[java["serial_no"]].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert subject[0].value == "Tenpay.com sign"
    sealed = json.loads(body)["data"][0]["encrypt_certificate"]
    theirs = aes_decrypt(sealed["nonce"], sealed["ciphertext"], sealed["associated_data"],
                         java["apiv3_key"])  # fmt: skip
    ours = decrypt_resource(java["apiv3_key"].encode(), sealed)
    assert theirs is not None and ours == theirs.encode()
    x509.load_pem_x509_certificate(ours)
    # expired certificates are not kept
    assert certificates_of(java["apiv3_key"].encode(), body, during.replace(year=2029)) == {}


def test_the_go_sdk_aes_vector() -> None:
    go = VECTORS["go_sdk_utils_aes_test"]
    resource = {key: go[key] for key in ("nonce", "associated_data", "ciphertext")}
    opened = decrypt_resource(
        go["apiv3_key"].encode(), {"algorithm": "AEAD_AES_256_GCM", **resource}
    )
    assert opened.decode() == go["plaintext"]
    assert (
        aes_decrypt(go["nonce"], go["ciphertext"], go["associated_data"], go["apiv3_key"])
        == (go["plaintext"])
    )


def test_wechatpayv3_opens_what_windowpay_seals() -> None:
    sealed = encrypt_resource(
        APIV3_KEY.encode(), "证书".encode(), secrets.token_hex(6), "certificate"
    )
    assert aes_decrypt(sealed["nonce"], sealed["ciphertext"], sealed["associated_data"],
                       APIV3_KEY) == "证书"  # fmt: skip


# ---- issue 21, item 7: at most one download a minute ---------------------------------------


class Listing:
    """A /v3/certificates that counts its downloads: one current platform certificate,
    sealed with the APIv3 key and signed by wechatpayv3 with that certificate's key."""

    def __init__(self, platform: Party) -> None:
        self.platform = platform
        self.downloads = 0

    async def download(self) -> HttpAnswer:
        self.downloads += 1
        pem = self.platform.certificate.public_bytes(serialization.Encoding.PEM)
        entry = {
            "serial_no": self.platform.serial,
            "effective_time": "2024-01-01T00:00:00+08:00",
            "expire_time": "2099-01-01T00:00:00+08:00",
            "encrypt_certificate": encrypt_resource(
                APIV3_KEY.encode(), pem, secrets.token_hex(6), "certificate"
            ),
        }
        body = json.dumps({"data": [entry]}).encode()
        stamp, nonce = str(int(time.time())), secrets.token_hex(16)
        return HttpAnswer(
            200,
            {
                "Wechatpay-Timestamp": stamp,
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Serial": self.platform.serial,
                "Wechatpay-Signature": rsa_sign(
                    self.platform.key, f"{stamp}\n{nonce}\n{body.decode()}\n"
                ),
            },
            body,
        )


def one_line_post(serial: str, now: float) -> dict[str, str]:
    """The headers of a forged POST: a fresh timestamp and some unknown serial."""
    return {
        "Wechatpay-Timestamp": str(int(now)),
        "Wechatpay-Nonce": "x",
        "Wechatpay-Signature": "x",
        "Wechatpay-Serial": serial,
    }


async def test_unknown_serials_download_the_certificates_at_most_once_a_minute() -> None:
    listing = Listing(party("WeChat Pay platform"))
    now = [time.time()]
    keys = PlatformKeys(WeChatTrust(APIV3_KEY.encode()), listing.download, _signed_by,
                        lambda: now[0])  # fmt: skip
    listener = WeChatNotifications(keys.key_for, APIV3_KEY.encode(), MCHID, 300.0,
                                   lambda: now[0])  # fmt: skip
    for _ in range(50):  # fifty one-line POSTs, each naming a serial nobody lists
        serial = secrets.token_hex(20).upper()
        try:
            await listener.verify(one_line_post(serial, now[0]), b"{}")
        except NoticeRefused as refused:
            assert "unknown serial" in str(refused)
        else:
            raise AssertionError("a forged notification was taken")
    assert listing.downloads == 1  # it used to be 50: one per POST
    # WeChat Pay rotates within the minute: its new serial is unknown until the minute is
    # over (the notification is refused; WeChat Pay sends it again), then learned.
    listing.platform = party("WeChat Pay platform, rotated in")
    now[0] += 59
    assert await keys.key_for(listing.platform.serial) is None
    assert listing.downloads == 1
    now[0] += 2
    assert await keys.key_for(listing.platform.serial) is not None
    assert listing.downloads == 2
