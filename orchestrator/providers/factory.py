"""Builds the provider adapters a service-point actor uses, from configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import Config, Credentials
from orchestrator.domain.states import Channel
from orchestrator.providers.alipay import Alipay
from orchestrator.providers.certificates import (
    CertificateError,
    load_pfx,
    rsa_public_key,
    wechat_serial,
)
from orchestrator.providers.http import HttpClient
from orchestrator.providers.instrumented import InstrumentedProvider
from orchestrator.providers.keys import (
    KeyMaterialError,
    Layout,
    provider_keys,
    read_certificate,
    read_identity,
    read_secret,
)
from orchestrator.providers.port import PaymentProvider
from orchestrator.providers.signing import load_public_key
from orchestrator.providers.unionpay import UnionPay
from orchestrator.providers.unionpay_keys import UnionPayKeys
from orchestrator.providers.wechat import WeChatPay
from orchestrator.providers.wechat_platform import WeChatMerchant, WeChatTrust


@dataclass
class Providers:
    """The adapters of every channel and the HTTP clients they share a process with."""

    by_channel: dict[Channel, PaymentProvider]
    clients: list[HttpClient]

    def __getitem__(self, channel: Channel) -> PaymentProvider:
        return self.by_channel[channel]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def build_providers(config: Config, keys_dir: Path) -> Providers:
    """One adapter per channel; every base_url must be resolved (no empty sandbox URL)."""
    wechat = config.providers[Channel.WECHAT]
    alipay = config.providers[Channel.ALIPAY]
    unionpay = config.providers[Channel.UNIONPAY]
    for channel, settings in config.providers.items():
        if not settings.base_url:
            raise ValueError(f"no base_url for {channel}: start the sandbox or configure one")
    clients = {channel: HttpClient(p.base_url) for channel, p in config.providers.items()}
    adapters: dict[Channel, PaymentProvider] = {
        Channel.WECHAT: WeChatPay(
            clients[Channel.WECHAT],
            wechat_merchant(keys_dir),
            wechat.merchant_id,
            wechat.app_id,
            wechat_trust(keys_dir, wechat.credentials),
        ),
        Channel.ALIPAY: Alipay(
            clients[Channel.ALIPAY],
            provider_keys(keys_dir, "alipay").for_merchant(),
            alipay.merchant_id,
        ),
        Channel.UNIONPAY: UnionPay(
            clients[Channel.UNIONPAY],
            unionpay_keys(keys_dir, unionpay.credentials),
            unionpay.merchant_id,
            unionpay.notify_url,
        ),
    }
    measured: dict[Channel, PaymentProvider] = {
        channel: InstrumentedProvider(adapter) for channel, adapter in adapters.items()
    }
    return Providers(measured, list(clients.values()))


def wechat_merchant(keys_dir: Path) -> WeChatMerchant:
    layout = Layout(keys_dir)
    identity = read_identity(layout.wechat_key, layout.wechat_cert)
    certified = rsa_public_key(identity.certificate).public_numbers()
    if identity.key.public_key().public_numbers() != certified:
        raise KeyMaterialError(
            f"{layout.wechat_cert} is not the certificate of {layout.wechat_key}"
        )
    return WeChatMerchant(identity.key, wechat_serial(identity.certificate))


def wechat_trust(keys_dir: Path, credentials: Credentials) -> WeChatTrust:
    apiv3_key = read_secret(keys_dir, credentials.apiv3_key_file, credentials.apiv3_key_env)
    public_key = None
    if credentials.public_key_id:
        public_key = load_public_key(keys_dir / credentials.public_key_file)
    try:
        return WeChatTrust(
            apiv3_key, credentials.public_key_id, public_key, credentials.certificate_refresh_s
        )
    except ValueError as error:
        raise KeyMaterialError(f"WeChat Pay credentials: {error}") from None


def unionpay_keys(keys_dir: Path, credentials: Credentials) -> UnionPayKeys:
    password = read_secret(keys_dir, credentials.pfx_password_file, credentials.pfx_password_env)
    pfx = keys_dir / credentials.pfx_file
    try:
        identity = load_pfx(pfx.read_bytes(), password)
    except OSError as error:
        raise KeyMaterialError(f"cannot read {pfx}: {error.strerror}") from None
    except CertificateError as error:
        raise KeyMaterialError(f"{pfx}: {error}") from None
    return UnionPayKeys(
        identity,
        read_certificate(keys_dir / credentials.root_cert_file),
        read_certificate(keys_dir / credentials.middle_cert_file),
        credentials.signer_name,
    )
