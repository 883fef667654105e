"""Alipay's public-key certificate mode (公钥证书模式): the SNs computed as Alipay's SDKs
compute them (checked against the values their own tests publish, for certificates of
Alipay's production and sandbox chains), answers verified with the certificate their
alipay_cert_sn names, and the sandbox speaking the mode end to end.

Alipay's official Python SDK has no certificate mode, and fzlee/alipay (which has one)
installs under the same top-level name `alipay`, so the SNs are checked against the
values the official Node SDK's and other clients' tests assert."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.channels.alipay.adapter import CERT_DOWNLOAD, Alipay
from orchestrator.channels.alipay.certs import (
    CertMode,
    alipay_keys,
    cert_sn,
    load_certificates,
    root_cert_sn,
)
from orchestrator.channels.alipay.files import make_dev_certificates
from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.channels.alipay.trust import AlipayKeys, merchant_keys
from orchestrator.channels.alipay.wiring import notifications
from orchestrator.config import Credentials, ProviderSettings
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import (
    Certificate,
    CertificateError,
    certificate_pem,
    issue,
)
from orchestrator.providers.http import HttpClient
from orchestrator.providers.keys import KeyMaterialError
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.signing import PrivateKey, generate_key, load_private_key, sign
from tests.conformance.alipay.conftest import (
    APP_ID,
    WIRE,
    FakeGateway,
    Keys,
    answer,
    form,
    serve_alipay,
)
from tests.conformance.alipay.test_answer_samples import CASES, Case
from tests.support import code, provider_id

PRODUCTION_ROOT_SN = "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6"


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("nodesdk_appCertPublicKey_2021001161683774.crt", "866efef280dec9137a87d047ac446315"),
        ("nodesdk_alipayCertPublicKey_RSA2.crt", "7513daaaa48aa3ba2e4018d84402479c"),
        ("yansongda_alipayAppPublicCert.crt", "e90dd23a37c5c7b616e003970817ff82"),
    ],
)
def test_a_certificates_sn_is_the_sdks(file: str, expected: str) -> None:
    [first, *_] = load_certificates((WIRE / "certs" / file).read_bytes())
    assert cert_sn(first) == expected


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("nodesdk_alipayRootCert.crt", PRODUCTION_ROOT_SN),
        ("yansongda_alipayRootCert.crt", PRODUCTION_ROOT_SN),
        ("fzlee_sandbox_alipay_root_cert.crt", "6bc29aa3b4d406c43483ffea81e08d22"),
    ],
)
def test_the_root_sn_joins_the_rsa_roots_only(file: str, expected: str) -> None:
    """The production file holds four roots (SM2, RSA, ECDSA, RSA-SHA1): two count."""
    assert root_cert_sn(load_certificates((WIRE / "certs" / file).read_bytes())) == expected


def sandbox_cert_mode(app: Keys) -> AlipayKeys:
    """Certificate mode with the certificate Alipay's sandbox signed the samples with."""
    alipay = load_certificates((WIRE / "certs" / "yansongda_alipayPublicCert.crt").read_bytes())
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # within that certificate's dates
    keys = alipay_keys(alipay, when)
    assert list(keys) == ["6f1e366a31d9575cd546914add04f4af"]  # the signing one, not its CA
    mode = CertMode("e90dd23a37c5c7b616e003970817ff82", PRODUCTION_ROOT_SN, keys)
    return AlipayKeys(app.app, keys, mode)


NO_SUCH_CERTIFICATE = (
    '{"alipay_open_app_alipaycert_download_response":{"code":"40004","msg":"Business Failed",'
    '"sub_code":"isv.alipay-cert-not-exist","sub_msg":"支付宝公钥证书不存在"}}'
)


def with_cert_sn(text: str, sn: str) -> str:
    return text.replace(',"sign":"', f',"alipay_cert_sn":"{sn}","sign":"', 1)


SANDBOX_SIGNED = [case for case in CASES if case.signed_by == "yansongda"]


@pytest.mark.parametrize("case", SANDBOX_SIGNED, ids=str)
async def test_the_sandboxs_signed_answers_verify_by_their_alipay_cert_sn(
    case: Case, keys: Keys
) -> None:
    text = with_cert_sn(answer(case.samples[0]), "6f1e366a31d9575cd546914add04f4af")
    gateway = FakeGateway({_method(text): [text]})
    alipay = Alipay(gateway, sandbox_cert_mode(keys), APP_ID)
    assert await case.operation(alipay) == case.expected
    sent = form(gateway.sent[0])
    assert (sent["app_cert_sn"], sent["alipay_root_cert_sn"]) == (
        "e90dd23a37c5c7b616e003970817ff82",
        PRODUCTION_ROOT_SN,
    )
    unknown = FakeGateway(
        {
            _method(text): [with_cert_sn(answer(case.samples[0]), "0" * 32)],
            CERT_DOWNLOAD: [NO_SUCH_CERTIFICATE],
        }
    )
    with pytest.raises(OutcomeUnknown, match="neither configured nor could be downloaded"):
        await case.operation(Alipay(unknown, sandbox_cert_mode(keys), APP_ID))


def _method(text: str) -> str:
    return text[2 : text.index('"', 2)].removesuffix("_response").replace("_", ".")


async def test_the_sandbox_speaks_certificate_mode_end_to_end(tmp_path: Path) -> None:
    names = make_dev_certificates(tmp_path)
    credentials = Credentials(names)
    served, runner = await serve_alipay(tmp_path, credentials)
    try:
        call = PayCall(provider_id("C"), code(Channel.ALIPAY), 8000, "SP01", "T01", "科目一")
        assert (await served.adapter.pay(call)).status is TradeStatus.PAID
        assert (await served.adapter.query(call.trade)).status is TradeStatus.PAID
        mode = merchant_keys(tmp_path, credentials).certificates
        assert mode is not None
        app = load_certificates((tmp_path / names["app_cert_file"]).read_bytes())[0]
        assert mode.app_cert_sn == cert_sn(app)
        alipay = load_certificates((tmp_path / names["alipay_cert_file"]).read_bytes())[0]
        assert served.gateway.keys.alipay_cert_sn == cert_sn(alipay)
        # a client in public-key mode sends no app_cert_sn: the gateway refuses it
        key_mode = served.adapter.__class__(
            served.client, merchant_keys(tmp_path, Credentials()), APP_ID
        )
        with pytest.raises(ProviderRejected, match=r"isv\.app-cert-not-exist"):
            await key_mode.query(call.trade)
        # and a notification the cert-mode sandbox signs is read by the wired verifier
        trade = served.bank.trade(call.out_trade_no)
        assert trade is not None
        sent = served.gateway.notification(trade, None)
        settings = ProviderSettings(
            base_url=served.gateway.base_url, merchant_id=APP_ID, credentials=credentials
        )
        client = HttpClient(served.gateway.base_url)
        verifier: AlipayNotifications = notifications(client, settings, tmp_path, 300)
        notice = await verifier.verify({}, sent.body)
        assert (notice.out_trade_no, notice.trade_status) == (call.out_trade_no, TradeStatus.PAID)
        await client.close()
    finally:
        await served.client.close()
        await runner.cleanup()


async def test_a_rotated_alipay_certificate_is_chosen_by_its_sn(keys: Keys) -> None:
    """Two Alipay certificates configured (the old and the new one): the answer names
    which one signed it."""
    ca_key = generate_key()
    ca = issue("test Alipay CA", ca_key, None, ca=True)
    old_key, new_key = generate_key(), generate_key()
    old = issue("支付宝 old", old_key, (ca, ca_key), ca=False)
    new = issue("支付宝 new", new_key, (ca, ca_key), ca=False)
    now = dt.datetime.now(dt.UTC)
    both = alipay_keys(load_certificates(certificate_pem(old) + certificate_pem(new)), now)
    mode = AlipayKeys(keys.app, both, CertMode("a" * 32, "b" * 32, both))
    raw = (
        '{"code":"10000","msg":"Success","trade_no":"T1","out_trade_no":"W1",'
        '"total_amount":"1.00","trade_status":"TRADE_SUCCESS"}'
    )
    text = (
        f'{{"alipay_trade_query_response":{raw},"alipay_cert_sn":"{cert_sn(new)}",'
        f'"sign":"{sign(new_key, raw.encode())}"}}'
    )
    alipay = Alipay(FakeGateway({"alipay.trade.query": [text]}), mode, APP_ID)
    assert (await alipay.query(TradeRef("W1", 100, 0))).status is TradeStatus.PAID
    claims_old = text.replace(cert_sn(new), cert_sn(old))
    alipay = Alipay(FakeGateway({"alipay.trade.query": [claims_old]}), mode, APP_ID)
    with pytest.raises(OutcomeUnknown, match="signature does not verify"):
        await alipay.query(TradeRef("W1", 100, 0))


def test_certificate_mode_is_all_three_files_or_none(tmp_path: Path) -> None:
    names = make_dev_certificates(tmp_path)
    partial = {k: v for k, v in names.items() if k != "alipay_root_cert_file"}
    with pytest.raises(KeyMaterialError, match="alipay_root_cert_file"):
        merchant_keys(tmp_path, Credentials(partial))


def test_an_app_certificate_of_another_key_is_refused_at_start(tmp_path: Path) -> None:
    names = make_dev_certificates(tmp_path)
    swapped = dict(names, app_cert_file=names["alipay_cert_file"])
    with pytest.raises(KeyMaterialError, match="not the certificate of the app's key"):
        merchant_keys(tmp_path, Credentials(swapped))


@pytest.mark.parametrize("which", ["app", "alipay"])
def test_a_certificate_out_of_date_is_refused_at_start(tmp_path: Path, which: str) -> None:
    names = make_dev_certificates(tmp_path)
    if which == "alipay":  # an Alipay certificate that expired, beside a valid app one
        key = load_private_key(tmp_path / "alipay" / "platform_private.pem")
        ca_key = generate_key()
        ca = issue("test CA", ca_key, None, ca=True)
        old = issue(
            "支付宝 old",
            key,
            (ca, ca_key),
            ca=False,
            days=1,
            now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        )
        (tmp_path / "old.crt").write_bytes(certificate_pem(old))
        names = dict(names, alipay_cert_file="old.crt")
        when = None
    else:
        when = dt.datetime.now(dt.UTC) + dt.timedelta(days=4000)
    with pytest.raises(
        KeyMaterialError,
        match=f"the {'Alipay' if which == 'alipay' else 'app'} certificate .*is valid from",
    ):
        merchant_keys(tmp_path, Credentials(names), when)


def test_a_file_without_rsa_certificates_is_refused() -> None:
    with pytest.raises(CertificateError):
        load_certificates(b"no certificate here")


async def test_a_success_without_alipay_cert_sn_is_unknown_in_certificate_mode(
    keys: Keys,
) -> None:
    """As Alipay's Java client ("ALIPAY_CERT_SN is Empty"): it hides a gateway or mode
    mix-up. It used to be verified with the only configured certificate and taken."""
    ca_key, alipay_key = generate_key(), generate_key()
    ca = issue("test Alipay CA", ca_key, None, ca=True)
    leaf = issue("支付宝 only", alipay_key, (ca, ca_key), ca=False)
    only = alipay_keys(load_certificates(certificate_pem(leaf)), dt.datetime.now(dt.UTC))
    mode = AlipayKeys(keys.app, only, CertMode("a" * 32, "b" * 32, only))
    raw = (
        '{"code":"10000","msg":"Success","trade_no":"T1","out_trade_no":"W1",'
        '"total_amount":"1.00","trade_status":"TRADE_SUCCESS"}'
    )
    text = f'{{"alipay_trade_query_response":{raw},"sign":"{sign(alipay_key, raw.encode())}"}}'
    alipay = Alipay(FakeGateway({"alipay.trade.query": [text]}), mode, APP_ID)
    with pytest.raises(OutcomeUnknown, match="without alipay_cert_sn"):
        await alipay.query(TradeRef("W1", 100, 0))
    named = text.replace(',"sign"', f',"alipay_cert_sn":"{cert_sn(leaf)}","sign"')
    alipay = Alipay(FakeGateway({"alipay.trade.query": [named]}), mode, APP_ID)
    assert (await alipay.query(TradeRef("W1", 100, 0))).status is TradeStatus.PAID


# ---- Alipay's certificate rotation: the new one is downloaded and checked ------------------


@dataclass
class Rotation:
    """A root and intermediate, Alipay's configured certificate (1) and its new one (2)."""

    root: Certificate
    middle: Certificate
    middle_key: PrivateKey
    mode: AlipayKeys
    new_key: PrivateKey
    new: Certificate


def rotation(keys: Keys) -> Rotation:
    root_key, middle_key = generate_key(), generate_key()
    root = issue("test Ant root", root_key, None, ca=True)
    middle = issue("test Ant Class 2", middle_key, (root, root_key), ca=False)  # as Alipay's
    old_key, new_key = generate_key(), generate_key()
    old = issue("支付宝 1", old_key, (middle, middle_key), ca=False)
    new = issue("支付宝 2", new_key, (middle, middle_key), ca=False)
    configured = alipay_keys(load_certificates(certificate_pem(old)), dt.datetime.now(dt.UTC))
    mode = CertMode("a" * 32, cert_sn(root), configured, (root,))
    return Rotation(root, middle, middle_key, AlipayKeys(keys.app, configured, mode), new_key, new)


def signed_by(key: PrivateKey, sn: str) -> str:
    raw = (
        '{"code":"10000","msg":"Success","trade_no":"T1","out_trade_no":"W1",'
        '"total_amount":"1.00","trade_status":"TRADE_SUCCESS"}'
    )
    return (
        f'{{"alipay_trade_query_response":{raw},"alipay_cert_sn":"{sn}",'
        f'"sign":"{sign(key, raw.encode())}"}}'
    )


def download_answer(pem: bytes) -> str:
    content = base64.b64encode(pem).decode()
    member = f'{{"code":"10000","msg":"Success","alipay_cert_content":"{content}"}}'
    # signed by nobody windowpay knows: the content is trusted by its chain alone
    return f'{{"alipay_open_app_alipaycert_download_response":{member},"sign":"AAAA"}}'


async def test_alipays_new_certificate_is_downloaded_when_it_chains_to_the_root(
    keys: Keys,
) -> None:
    """On the day Alipay changes its certificate every answer used to be unknown until
    someone put the new file in place and restarted."""
    r = rotation(keys)
    new_sn = cert_sn(r.new)
    gateway = FakeGateway(
        {
            "alipay.trade.query": [signed_by(r.new_key, new_sn)],
            CERT_DOWNLOAD: [download_answer(certificate_pem(r.new) + certificate_pem(r.middle))],
        }
    )
    alipay = Alipay(gateway, r.mode, APP_ID)
    assert (await alipay.query(TradeRef("W1", 100, 0))).status is TradeStatus.PAID
    assert json.loads(form(gateway.sent[1])["biz_content"]) == {"alipay_cert_sn": new_sn}
    assert (await alipay.query(TradeRef("W1", 100, 0))).status is TradeStatus.PAID
    assert [form(b)["method"] for b in gateway.sent].count(CERT_DOWNLOAD) == 1  # kept
    # and a notification the new certificate signs is taken by the wired verifier's keys
    assert any(
        k.public_numbers() == r.new_key.public_key().public_numbers() for k in r.mode.notice_keys()
    )


async def test_a_downloaded_certificate_of_another_root_is_refused_and_asked_rarely(
    keys: Keys,
) -> None:
    r = rotation(keys)
    stranger_key = generate_key()
    stranger = issue("test other root", stranger_key, None, ca=True)
    forged_key = generate_key()
    forged = issue("支付宝 2", forged_key, (stranger, stranger_key), ca=False)
    forged_sn = cert_sn(forged)
    now = [1_800_000_000.0]
    gateway = FakeGateway(
        {
            "alipay.trade.query": [signed_by(forged_key, forged_sn)],
            CERT_DOWNLOAD: [download_answer(certificate_pem(forged) + certificate_pem(stranger))],
        }
    )
    alipay = Alipay(gateway, r.mode, APP_ID, lambda: now[0])
    for _ in range(3):
        with pytest.raises(OutcomeUnknown, match="neither configured nor could be downloaded"):
            await alipay.query(TradeRef("W1", 100, 0))
    methods = [form(b)["method"] for b in gateway.sent]
    assert methods.count(CERT_DOWNLOAD) == 1  # not asked again within a minute
    now[0] += 61
    with pytest.raises(OutcomeUnknown):
        await alipay.query(TradeRef("W1", 100, 0))
    assert [form(b)["method"] for b in gateway.sent].count(CERT_DOWNLOAD) == 2
    assert r.mode.downloaded == {}


async def test_the_sandbox_hands_out_its_certificate_on_rotation(tmp_path: Path) -> None:
    """windowpay configured with Alipay's old certificate; the cert-mode sandbox signs
    with its current one: the adapter downloads that one from the sandbox and goes on."""
    names = make_dev_certificates(tmp_path)
    served, runner = await serve_alipay(tmp_path, Credentials(names))
    try:
        middle_key = load_private_key(tmp_path / "sandbox" / "alipay" / "middle_key.pem")
        current = load_certificates((tmp_path / names["alipay_cert_file"]).read_bytes())
        middle = current[1]
        old = issue("支付宝 sandbox, before", generate_key(), (middle, middle_key), ca=False)
        (tmp_path / "alipay" / "alipay_cert_old.crt").write_bytes(
            certificate_pem(old) + certificate_pem(middle)
        )
        before = Credentials({**names, "alipay_cert_file": "alipay/alipay_cert_old.crt"})
        keys = merchant_keys(tmp_path, before)
        assert cert_sn(current[0]) not in keys.alipay
        alipay = Alipay(served.client, keys, APP_ID)
        call = PayCall(provider_id("C"), code(Channel.ALIPAY), 8000, "SP01", "T01", "科目一")
        assert (await alipay.pay(call)).status is TradeStatus.PAID
        assert list(keys.downloaded) == [cert_sn(current[0])]
    finally:
        await served.client.close()
        await runner.cleanup()
