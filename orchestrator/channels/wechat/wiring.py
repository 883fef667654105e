"""Builds WeChat Pay's adapter (from the merchant's keys) and its sandbox gateway (from the
platform's dev keys)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.channels.wechat.adapter import WeChatPay
from orchestrator.channels.wechat.platform import WeChatMerchant, WeChatTrust
from orchestrator.channels.wechat.sandbox import WeChatGateway
from orchestrator.channels.wechat.sandbox_keys import wechat_platform_keys
from orchestrator.config import Credentials, ProviderSettings
from orchestrator.providers.certificates import rsa_public_key, wechat_serial
from orchestrator.providers.http import HttpClient
from orchestrator.providers.keys import KeyMaterialError, Layout, read_identity, read_secret
from orchestrator.providers.signing import load_public_key
from orchestrator.sandbox.bank import SandboxBank


def adapter(client: HttpClient, settings: ProviderSettings, keys_dir: Path) -> WeChatPay:
    return WeChatPay(
        client,
        wechat_merchant(keys_dir),
        settings.merchant_id,
        settings.app_id,
        wechat_trust(keys_dir, settings.credentials),
        notify_url=settings.notify_url or NOTIFY_URL_UNSET,
    )


# Native payment requires a notify_url; until the notification listener's public URL is
# configured as the channel's notify_url, payments are found by query alone.
NOTIFY_URL_UNSET = "http://127.0.0.1:8080/wechat/notify"


def gateway(bank: SandboxBank, settings: ProviderSettings, keys_dir: Path) -> WeChatGateway:
    credentials = settings.credentials
    keys = wechat_platform_keys(
        keys_dir,
        credentials.apiv3_key_file,
        credentials.apiv3_key_env,
        credentials.public_key_id,
    )
    return WeChatGateway(bank, keys, settings.merchant_id, settings.app_id)


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
