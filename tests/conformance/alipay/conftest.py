"""What the Alipay conformance tests share: the wire samples (tests/fixtures/wire/alipay,
SOURCES.md says where each comes from), a stand-in for the gateway that answers a
sample, test keys, and the Alipay sandbox served on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from orchestrator.channels.alipay.adapter import Alipay, raw_member
from orchestrator.channels.alipay.certs import load_certificates
from orchestrator.channels.alipay.files import make_dev_keys
from orchestrator.channels.alipay.sandbox import AlipayGateway
from orchestrator.channels.alipay.trust import AlipayKeys, gateway_keys, merchant_keys
from orchestrator.config import Credentials
from orchestrator.embedded_redis import free_port
from orchestrator.providers.certificates import rsa_public_key
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.signing import (
    PrivateKey,
    PublicKey,
    generate_key,
    load_public_key,
    sign,
)
from orchestrator.sandbox.bank import SandboxBank, Timing

WIRE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "alipay"
APP_ID = "2021000000000001"
SIGN = re.compile(r'"sign":"([^"]*)"')


def answer(name: str) -> str:
    return (WIRE / "answers" / f"{name}.json").read_text(encoding="utf-8").strip()


def notification(name: str) -> bytes:
    return (WIRE / "notifications" / f"{name}.form").read_bytes().strip()


def form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def public_key(name: str) -> PublicKey:
    return load_public_key(WIRE / "keys" / name)


def certificate_key(name: str) -> PublicKey:
    """The key of the first (signing) certificate of a sample certificate file."""
    return rsa_public_key(load_certificates((WIRE / "certs" / name).read_bytes())[0])


def resigned(text: str, name: str, key: PrivateKey) -> str:
    """The answer's exact text with its signature made again by `key` over the raw text
    of its `name` member (a placeholder sample's documented sign verifies nothing)."""
    raw = raw_member(text, name)
    assert raw is not None, name
    return SIGN.sub(lambda _: f'"sign":"{sign(key, raw.encode())}"', text, count=1)


def method_of(body: bytes) -> str:
    return form(body)["method"]


class FakeGateway(HttpClient):
    """Answers each method with the next of its texts (the last one again once used up)
    and a download with `files`; keeps every request body."""

    def __init__(
        self, answers: Mapping[str, list[str]], files: Mapping[str, bytes] | None = None
    ) -> None:
        super().__init__("http://gateway.invalid")
        self.answers = {method: list(texts) for method, texts in answers.items()}
        self.files = dict(files or {})
        self.sent: list[bytes] = []

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> HttpAnswer:
        assert body is not None
        self.sent.append(body)
        texts = self.answers[method_of(body)]
        text = texts.pop(0) if len(texts) > 1 else texts[0]
        return HttpAnswer(200, {"Content-Type": "application/json"}, text.encode())

    async def download(self, url: str, *, timeout_s: float, redirects: int = 5) -> HttpAnswer:
        return HttpAnswer(200, {}, self.files[url])


@dataclass(frozen=True)
class Keys:
    app: PrivateKey  # windowpay's app key
    alipay: PrivateKey  # plays Alipay: re-signs the placeholder samples


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(generate_key(), generate_key())


def adapter(
    gateway: FakeGateway,
    verify_with: PublicKey,
    app: PrivateKey,
    clock: Callable[[], float] = time.time,
) -> Alipay:
    return Alipay(gateway, AlipayKeys(app, {"": verify_with}), APP_ID, clock)


def sdk_private(key: PrivateKey) -> str:
    """A private key as Alipay's Python SDK takes it: PKCS#1 base64, no PEM lines."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return "".join(pem.decode().splitlines()[1:-1])


def sdk_public(key: PublicKey) -> str:
    """A public key as the SDK takes it: SubjectPublicKeyInfo base64, no PEM lines."""
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "".join(pem.decode().splitlines()[1:-1])


@dataclass
class Served:
    """The Alipay sandbox on loopback, and windowpay's adapter talking to it."""

    gateway: AlipayGateway
    adapter: Alipay
    keys_dir: Path
    client: HttpClient

    @property
    def bank(self) -> SandboxBank:
        return self.gateway.bank


async def serve_alipay(
    keys_dir: Path, credentials: Credentials | None = None
) -> tuple[Served, web.AppRunner]:
    credentials = credentials or Credentials()
    make_dev_keys(keys_dir)
    bank = SandboxBank("ALIPAY", Timing(time_scale=0.02))
    gateway = AlipayGateway(bank, gateway_keys(keys_dir, credentials), APP_ID)
    runner = web.AppRunner(gateway.app, access_log=None, handler_cancellation=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    gateway.base_url = f"http://127.0.0.1:{port}"
    client = HttpClient(gateway.base_url)
    alipay = Alipay(client, merchant_keys(keys_dir, credentials), APP_ID)
    return Served(gateway, alipay, keys_dir, client), runner


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    served, runner = await serve_alipay(tmp_path_factory.mktemp("alipay-keys"))
    yield served
    await served.client.close()
    await runner.cleanup()


def envelope(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(text)
    return parsed
