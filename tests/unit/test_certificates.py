"""Certificates: the chain check UnionPay answers go through, the .pfx, WeChat's sealed
platform certificates, and the platform key set through rotation and unknown serials."""

from __future__ import annotations

import datetime as dt
import secrets
import time

import orjson
import pytest

from orchestrator.channels.wechat.adapter import _signed_by, answer_message
from orchestrator.channels.wechat.platform import (
    REFRESH_COOLDOWN_S,
    PlatformKeys,
    WeChatTrust,
    certificates_of,
    decrypt_resource,
    encrypt_resource,
)
from orchestrator.providers.certificates import (
    CertificateError,
    ChainTrust,
    SigningIdentity,
    certificate_pem,
    issue,
    load_pfx,
    pfx_bytes,
    serial_decimal,
    serial_hex,
    verify_chain,
)
from orchestrator.providers.http import HttpAnswer
from orchestrator.providers.keys import SandboxCa
from orchestrator.providers.signing import generate_key, sign


def now() -> dt.datetime:
    """The time of the check: certificates made inside a test are valid from then on,
    however long after collection the test runs."""
    return dt.datetime.now(dt.UTC)


def make_ca() -> SandboxCa:
    root_key, middle_key = generate_key(), generate_key()
    root = issue("root", root_key, None, ca=True)
    middle = issue("middle", middle_key, (root, root_key), ca=True)
    return SandboxCa(SigningIdentity(root_key, root), SigningIdentity(middle_key, middle))


CA = make_ca()
OTHER_CA = make_ca()


def test_a_certificate_is_trusted_only_through_the_configured_chain() -> None:
    leaf = CA.issue("signer").certificate
    verify_chain(leaf, [CA.middle.certificate], CA.root.certificate, now())
    stranger = OTHER_CA.issue("signer").certificate
    with pytest.raises(CertificateError, match="is not issued by"):
        verify_chain(stranger, [CA.middle.certificate], CA.root.certificate, now())
    with pytest.raises(CertificateError, match="is not issued by"):  # middle of another root
        verify_chain(stranger, [OTHER_CA.middle.certificate], CA.root.certificate, now())
    later = now() + dt.timedelta(days=4000)
    with pytest.raises(CertificateError, match="is not valid at"):
        verify_chain(leaf, [CA.middle.certificate], CA.root.certificate, later)
    key = generate_key()
    self_made = issue("China UnionPay", key, None, ca=False)
    with pytest.raises(CertificateError, match=r"China UnionPay.* is not issued by CN=middle"):
        verify_chain(self_made, [CA.middle.certificate], CA.root.certificate, now())


def test_a_leaf_must_not_sign_another_leaf() -> None:
    leaf = CA.issue("signer")
    grandchild = issue("x", generate_key(), (leaf.certificate, leaf.key), ca=False)
    with pytest.raises(CertificateError, match="is not a CA"):
        chain = [leaf.certificate, CA.middle.certificate]
        verify_chain(grandchild, chain, CA.root.certificate, now())


def test_chain_trust_refuses_a_ca_as_signer_and_remembers_good_ones() -> None:
    trust = ChainTrust(CA.root.certificate, [CA.middle.certificate])
    pem = certificate_pem(CA.issue("signer").certificate)
    assert trust.certificate(pem, now()) is trust.certificate(pem, now())
    sub_ca = issue("sub CA", generate_key(), (CA.middle.certificate, CA.middle.key), ca=True)
    with pytest.raises(CertificateError, match="is a CA"):
        trust.certificate(certificate_pem(sub_ca), now())
    with pytest.raises(CertificateError, match="not a PEM"):
        trust.certificate(b"garbage", now())


def test_a_pfx_opens_only_with_its_password() -> None:
    identity = CA.issue("acp signing")
    data = pfx_bytes(identity, b"s3cret", "acp_sign")
    opened = load_pfx(data, b"s3cret")
    assert serial_decimal(opened.certificate) == str(identity.certificate.serial_number)
    assert serial_hex(opened.certificate) == f"{identity.certificate.serial_number:X}"
    with pytest.raises(CertificateError, match="wrong password"):
        load_pfx(data, b"guess")


APIV3 = b"0123456789abcdef0123456789abcdef"


def test_the_sealed_certificate_opens_with_the_apiv3_key_only() -> None:
    sealed = encrypt_resource(APIV3, b"plain", "abcdefabcdef", "certificate")
    assert decrypt_resource(APIV3, sealed) == b"plain"
    refused = "^platform certificate does not decrypt with the APIv3 key$"
    with pytest.raises(CertificateError, match=refused):
        decrypt_resource(b"f" * 32, sealed)
    with pytest.raises(CertificateError, match=refused):
        decrypt_resource(APIV3, {**sealed, "associated_data": "other"})
    with pytest.raises(CertificateError, match=refused):
        decrypt_resource(APIV3, {**sealed, "nonce": "000000000000"})
    with pytest.raises(CertificateError, match="algorithm"):
        decrypt_resource(APIV3, {**sealed, "algorithm": "AEAD_AES_128_GCM"})


def listing(*identities: SigningIdentity, serial: str | None = None) -> bytes:
    data = [
        {
            "serial_no": serial or serial_hex(i.certificate),
            "encrypt_certificate": encrypt_resource(
                APIV3, certificate_pem(i.certificate), secrets.token_hex(6), "certificate"
            ),
        }
        for i in identities
    ]
    return orjson.dumps({"data": data})


def test_listed_certificates_must_match_their_serial_and_be_current() -> None:
    one, two = CA.issue("p1"), CA.issue("p2")
    found = certificates_of(APIV3, listing(one, two), now())
    assert set(found) == {serial_hex(one.certificate), serial_hex(two.certificate)}
    with pytest.raises(CertificateError, match="is listed as"):
        certificates_of(APIV3, listing(one, serial="ABC"), now())
    assert certificates_of(APIV3, listing(one), now() + dt.timedelta(days=4000)) == {}


class Gateway:
    """A fake /v3/certificates: lists some certificates, signs with one of them."""

    def __init__(self, listed: list[SigningIdentity], signer: SigningIdentity) -> None:
        self.listed = listed
        self.signer = signer
        self.downloads = 0

    def signed(self, body: bytes, signer: SigningIdentity | None = None) -> HttpAnswer:
        signer = signer or self.signer
        timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
        headers = {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial_hex(signer.certificate),
            "Wechatpay-Signature": sign(signer.key, answer_message(timestamp, nonce, body)),
        }
        return HttpAnswer(200, headers, body)

    async def download(self) -> HttpAnswer:
        self.downloads += 1
        return self.signed(listing(*self.listed))


def serial(identity: SigningIdentity) -> str:
    return serial_hex(identity.certificate)


async def test_rotation_two_certificates_at_once_and_one_refresh_per_unknown_serial() -> None:
    old = CA.issue("platform old")
    gateway = Gateway([old], old)
    now = [time.time()]
    keys = PlatformKeys(WeChatTrust(APIV3), gateway.download, _signed_by, lambda: now[0])
    assert await keys.key_for(serial(old)) is not None
    assert await keys.key_for(serial(old)) is not None
    assert gateway.downloads == 1  # cached
    new = CA.issue("platform new")
    gateway.listed, gateway.signer = [old, new], new  # the gateway rotates
    now[0] += REFRESH_COOLDOWN_S  # downloads are at most one a minute
    assert await keys.key_for(serial(new)) is not None  # unknown -> refreshed once
    assert gateway.downloads == 2
    assert await keys.key_for(serial(old)) is not None  # both accepted at once
    assert keys.serials == {serial(old), serial(new)}
    assert gateway.downloads == 2
    stranger = CA.issue("not listed")
    now[0] += REFRESH_COOLDOWN_S
    assert await keys.key_for(serial(stranger)) is None
    assert gateway.downloads == 3  # one refresh, then unknown
    now[0] += 12 * 3600  # stale: refreshed before use
    gateway.listed = [new]
    assert await keys.key_for(serial(old)) is None
    assert keys.serials == {serial(new)}


async def test_a_listing_not_signed_by_a_listed_key_is_not_taken() -> None:
    listed, outsider = CA.issue("listed"), CA.issue("outsider")

    async def forged() -> HttpAnswer:
        return Gateway([], outsider).signed(listing(listed), outsider)

    keys = PlatformKeys(WeChatTrust(APIV3), forged, _signed_by, time.time)
    assert await keys.key_for(serial(listed)) is None
    assert keys.serials == frozenset()


async def test_a_listing_sealed_with_another_apiv3_key_is_not_taken() -> None:
    listed = CA.issue("listed")
    gateway = Gateway([listed], listed)
    keys = PlatformKeys(WeChatTrust(b"x" * 32), gateway.download, _signed_by, time.time)
    assert await keys.key_for(serial(listed)) is None


async def test_public_key_mode_needs_no_download() -> None:
    private = generate_key()
    trust = WeChatTrust(APIV3, "PUB_KEY_ID_0114232134912410000000000000", private.public_key())
    gateway = Gateway([], CA.issue("unused"))
    keys = PlatformKeys(trust, gateway.download, _signed_by, time.time)
    assert await keys.key_for("PUB_KEY_ID_0114232134912410000000000000") is not None
    assert await keys.key_for("PUB_KEY_ID_0000000000000000000000000000") is None
    assert gateway.downloads == 0
    with pytest.raises(ValueError, match="go together"):
        WeChatTrust(APIV3, "PUB_KEY_ID_1", None)
    with pytest.raises(ValueError, match="32 bytes"):
        WeChatTrust(b"short")


def test_a_unionpay_answer_is_trusted_by_its_chain_and_its_holder_name() -> None:
    """A 5.1.0 answer names no certId; its signPubKeyCert is trusted once it chains to
    the configured root and its holder (the third @-part of the CN) is the signer."""
    from orchestrator.channels.unionpay.keys import SANDBOX_SIGNER, UnionPayKeys

    signer = CA.issue(f"041@Z12@{SANDBOX_SIGNER}@00000062")
    keys = UnionPayKeys(CA.issue("merchant"), CA.root.certificate, CA.middle.certificate)
    fields = {"signPubKeyCert": certificate_pem(signer.certificate).decode()}
    assert (
        keys.answer_key(fields, now()).public_numbers() == signer.key.public_key().public_numbers()
    )
    with pytest.raises(CertificateError, match="no signPubKeyCert"):
        keys.answer_key({}, now())
    named = UnionPayKeys(keys.identity, keys.root, keys.middle, signer_name="中国银联股份有限公司")
    with pytest.raises(CertificateError, match="holder is 'windowpay sandbox:SIGN'"):
        named.answer_key(fields, now())
    unionpay = CA.issue("041@8310000000083040@中国银联股份有限公司@00016495")
    pem = certificate_pem(unionpay.certificate).decode()
    assert named.answer_key({"signPubKeyCert": pem}, now()) is not None
    # The name must be the holder field itself, not a part of the CN that contains it.
    wrong = ("中国银联股份有限公司", "041@Z12@中国银联股份有限公司", "041@中国银联股份有限公司@Z@1")
    for cn in wrong:
        other = certificate_pem(CA.issue(cn).certificate).decode()
        with pytest.raises(CertificateError, match="holder is"):
            named.answer_key({"signPubKeyCert": other}, now())
