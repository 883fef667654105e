"""What the WeChat Pay conformance tests share.

The expectations come from outside windowpay: the published samples under
tests/fixtures/wire/wechat/ (SOURCES.md says where each comes from) and wechatpayv3, an
independent Python implementation of the protocol, which plays WeChat Pay's side:

* `Gateway` is a scripted WeChat Pay behind windowpay's HTTP client. It checks each
  request's Authorization with wechatpayv3's verifier and the merchant's certificate,
  and answers with a sample body signed by wechatpayv3's signer under a platform key
  windowpay trusts (public-key mode, so nothing is downloaded).
* `sandbox` serves windowpay's own WeChat sandbox gateway on loopback, for the shape
  checks and for wechatpayv3's client to talk to.

Keys and certificates are made here with `cryptography`, not with windowpay's helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from wechatpayv3.utils import rsa_sign, rsa_verify

from orchestrator.channels.registry import ensure_dev_keys, spec
from orchestrator.channels.wechat.adapter import WeChatPay
from orchestrator.channels.wechat.platform import WeChatMerchant, WeChatTrust
from orchestrator.channels.wechat.sandbox import WeChatGateway
from orchestrator.channels.wechat.wiring import adapter as wired_adapter
from orchestrator.config import Config, parse_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import free_port
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.sandbox.bank import SandboxBank, Timing
from tests.support import small_config_data

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "wechat"
BILLS = Path(__file__).resolve().parents[2] / "fixtures" / "bills"
SHAPES: dict[str, dict[str, list[str]]] = tomllib.loads((FIXTURES / "shapes.toml").read_text())

MCHID, APPID = "1230000109", "wxd678efh567hg6787"  # the documents' example ids
SP_MCHID, SUB_MCHID, SUB_APPID = "1230000100", "1900000109", "wxd678efhjkfhsdk"
APIV3_KEY = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"  # 32 characters
PUBLIC_KEY_ID = "PUB_KEY_ID_0112300001092026120700000001"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"


def sample(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def error_sample(code: str) -> tuple[int, bytes]:
    """(status, body) of an error answer in answers/errors.json."""
    entry = sample_json("answers/errors.json")[code]
    return entry["status"], json.dumps(entry["body"], ensure_ascii=False).encode()


def fields(value: Any, prefix: str = "") -> set[str]:
    """Every field of a JSON object, nested ones as "a.b"; an array is one field."""
    if not isinstance(value, dict):
        return {prefix} if prefix else set()
    found: set[str] = set()
    for name, inner in value.items():
        path = f"{prefix}.{name}" if prefix else name
        found |= fields(inner, path) if isinstance(inner, dict) else {path}
    return found


def shape_problems(kind: str, payload: Any) -> list[str]:
    """What keeps `payload` from the shape of `kind` (shapes.toml); [] when it has it."""
    shape = SHAPES[kind]
    have = fields(payload)
    required, allowed = set(shape["required"]), set(shape["required"]) | set(shape["optional"])
    problems = [f"{kind}: missing {name}" for name in sorted(required - have)]
    problems += [f"{kind}: unknown field {name}" for name in sorted(have - allowed)]
    return problems


# ---- keys, made with cryptography -------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """One side's RSA key and its certificate (self-signed: only the key matters here)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def serial(self) -> str:
        return format(self.certificate.serial_number, "X")

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


def party(name: str) -> Party:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return Party(key, certificate)


@pytest.fixture(scope="session")
def merchant() -> Party:
    return party("1230000109 merchant API certificate")


@pytest.fixture(scope="session")
def platform() -> Party:
    return party("WeChat Pay platform (test)")


# ---- the scripted gateway ------------------------------------------------------------------

AUTHORIZATION = re.compile(r"^WECHATPAY2-SHA256-RSA2048 (.+)$")
AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Sent:
    method: str
    target: str
    body: bytes
    authorization: dict[str, str]
    headers: Mapping[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Gateway(HttpClient):
    """WeChat Pay as a script: each request is checked (wechatpayv3 verifies its
    signature with the merchant's certificate) and gets the next answer, signed by
    wechatpayv3 as the platform."""

    def __init__(self, merchant: Party, platform: Party, mchid: str = MCHID) -> None:
        super().__init__("https://api.mch.weixin.qq.com")
        self.merchant, self.platform, self.mchid = merchant, platform, mchid
        self.answers: list[tuple[int, bytes]] = []
        self.sent: list[Sent] = []
        self.serial = PUBLIC_KEY_ID  # what the answers are signed under
        self.extra_headers: dict[str, str] = {}

    def answer(self, status: int, body: bytes = b"") -> None:
        self.answers.append((status, body))

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> HttpAnswer:
        path = "/" + target.split("://", 1)[1].split("/", 1)[1] if "://" in target else target
        given = dict(headers or {})
        sent = Sent(method, path, body or b"", self.verified(given, method, path, body), given)
        self.sent.append(sent)
        status, answer = self.answers.pop(0)
        return HttpAnswer(status, self.signed(answer), answer)

    def verified(
        self, headers: Mapping[str, str], method: str, path: str, body: bytes | None
    ) -> dict[str, str]:
        matched = AUTHORIZATION.match(headers.get("Authorization", ""))
        assert matched, headers
        auth = dict(AUTH_FIELD.findall(matched.group(1)))
        assert auth["mchid"] == self.mchid and auth["serial_no"] == self.merchant.serial, auth
        assert abs(time.time() - int(auth["timestamp"])) < 300, auth
        text = (body or b"").decode()
        # wechatpayv3's verifier checks "<first>\n<nonce>\n<body>\n"; a request's message
        # is "METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n", so its first line is the first three.
        first = f"{method}\n{path}\n{auth['timestamp']}"
        public = self.merchant.certificate.public_key()
        assert rsa_verify(first, auth["nonce_str"], text, auth["signature"], public), auth
        return auth

    def signed(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n{body.decode()}\n"
        return {
            "Request-ID": secrets.token_hex(8),
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature": rsa_sign(self.platform.key, message),
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
            **self.extra_headers,
        }


def trust_in(platform: Party) -> WeChatTrust:
    """windowpay trusting the platform's key in public-key mode."""
    return WeChatTrust(APIV3_KEY.encode(), PUBLIC_KEY_ID, platform.key.public_key())


@pytest.fixture
def gateway(merchant: Party, platform: Party) -> Gateway:
    return Gateway(merchant, platform)


def adapter_for(
    gateway: Gateway,
    *,
    clock: Callable[[], float] = time.time,
    trust: WeChatTrust | None = None,
    **partner: str,
) -> WeChatPay:
    """windowpay's adapter talking to the scripted gateway (partner mode: sub_mchid=...),
    trusting its platform key in public-key mode unless told otherwise."""
    keys = WeChatMerchant(gateway.merchant.key, gateway.merchant.serial)
    trusted = trust or trust_in(gateway.platform)
    return WeChatPay(gateway, keys, gateway.mchid, APPID, trusted, clock,
                     notify_url="https://example.gov.cn/notify/wechat", **partner)  # fmt: skip


# ---- windowpay's sandbox on loopback -----------------------------------------------------


@dataclass
class Sandbox:
    config: Config
    keys_dir: Path
    gateway: WeChatGateway

    @property
    def bank(self) -> SandboxBank:
        return self.gateway.bank

    @property
    def url(self) -> str:
        return self.gateway.base_url

    def adapter(self, client: HttpClient) -> WeChatPay:
        """windowpay's adapter as the deployment builds it (wiring.py)."""
        settings = self.config.providers[Channel.WECHAT]
        settings = replace(settings, notify_url=self.config.notify_url(Channel.WECHAT))
        return wired_adapter(client, settings, self.keys_dir)


def sandbox_config(**provider: str | bool) -> Config:
    data = small_config_data(time_scale=0.02)
    data.setdefault("providers", {}).setdefault("WECHAT", {}).update(provider)
    return parse_config(data, "conformance config")


async def serve(config: Config, keys_dir: Path) -> tuple[Sandbox, web.AppRunner]:
    ensure_dev_keys(keys_dir, [Channel.WECHAT])
    settings = config.providers[Channel.WECHAT]
    bank = SandboxBank("WECHAT", Timing(time_scale=0.02))
    gateway = spec(Channel.WECHAT).gateway(bank, settings, keys_dir)
    assert isinstance(gateway, WeChatGateway)
    runner = web.AppRunner(gateway.app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    gateway.base_url = f"http://127.0.0.1:{port}"
    return Sandbox(config, keys_dir, gateway), runner


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    """windowpay's WeChat sandbox, direct mode."""
    served, runner = await serve(sandbox_config(), tmp_path_factory.mktemp("keys"))
    yield served
    await runner.cleanup()


@pytest.fixture(scope="module")
async def partner_sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    """windowpay's WeChat sandbox for a partner (sp_mchid) and its sub-merchant."""
    config = sandbox_config(
        merchant_id=SP_MCHID,
        app_id=APPID,
        partner=True,
        sub_merchant_id=SUB_MCHID,
        sub_app_id=SUB_APPID,
    )
    served, runner = await serve(config, tmp_path_factory.mktemp("keys"))
    yield served
    await runner.cleanup()
